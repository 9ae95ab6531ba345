#!/bin/sh
# consulctl lab: systemd image setup (runs at build time).
set -eu
install -m 0644 /tmp/consulctl-lab/ssh-hostkeys.service /etc/systemd/system/consulctl-lab-ssh-hostkeys.service
systemctl enable consulctl-lab-ssh-hostkeys.service ssh.service
# A pure systemd host: supervisor is installed (base image) but not running.
systemctl disable supervisor.service
# Units that cannot work in an unprivileged container.
systemctl mask \
  getty.target console-getty.service getty@tty1.service serial-getty@.service \
  systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
  systemd-udev-trigger.service systemd-modules-load.service systemd-remount-fs.service \
  sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
  sys-fs-fuse-connections.mount dev-hugepages.mount dev-mqueue.mount \
  systemd-sysctl.service systemd-firstboot.service systemd-hwdb-update.service \
  apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer
