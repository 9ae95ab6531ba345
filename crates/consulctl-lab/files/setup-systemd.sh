#!/bin/sh
# consulctl lab: systemd image setup (runs at build time).
set -eu
install -m 0644 /tmp/consulctl-lab/ssh-hostkeys.service /etc/systemd/system/consulctl-lab-ssh-hostkeys.service
systemctl enable consulctl-lab-ssh-hostkeys.service ssh.service
# A pure systemd host: supervisor is installed (base image) but not running.
systemctl disable supervisor.service
# DNS plumbing is consulctl's job: dnsmasq and systemd-resolved are installed (base image) but
# disabled, so neither starts at boot until consulctl enables it.
systemctl disable dnsmasq.service systemd-resolved.service
# Load balancers are consulctl's job too: nginx (with the stream module) and haproxy are
# installed (base image) but disabled; `consulctl apply` enables them where the inventory asks.
systemctl disable nginx.service haproxy.service
install -d -m 0755 /etc/systemd/system/haproxy.service.d
install -m 0644 /tmp/consulctl-lab/haproxy-lab.conf /etc/systemd/system/haproxy.service.d/00-consulctl-lab.conf
install -d -m 0755 /etc/systemd/resolved.conf.d
install -m 0644 /tmp/consulctl-lab/resolved-lab.conf /etc/systemd/resolved.conf.d/00-consulctl-lab.conf
# Resolved mode (`consulctl lab up --resolved-hosts`): the units are enabled here but run only
# on hosts whose PID 1 is `/sbin/init consulctl.lab.resolved` (ConditionKernelCommandLine).
install -m 0755 /tmp/consulctl-lab/resolved-mode.sh /usr/local/sbin/consulctl-lab-resolved-mode
install -m 0644 /tmp/consulctl-lab/resolved-mode.service /etc/systemd/system/consulctl-lab-resolved-mode.service
install -m 0644 /tmp/consulctl-lab/resolved-docker-dns.service /etc/systemd/system/consulctl-lab-resolved-docker-dns.service
systemctl enable consulctl-lab-resolved-mode.service consulctl-lab-resolved-docker-dns.service
# Units that cannot work in an unprivileged container.
systemctl mask \
  getty.target console-getty.service getty@tty1.service serial-getty@.service \
  systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
  systemd-udev-trigger.service systemd-modules-load.service systemd-remount-fs.service \
  sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
  sys-fs-fuse-connections.mount dev-hugepages.mount dev-mqueue.mount \
  systemd-sysctl.service systemd-firstboot.service systemd-hwdb-update.service \
  apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer
