#!/bin/sh
# consulctl lab: image setup shared by the supervisord and systemd images (runs at build time).
set -eu

# Non-root SSH user with passwordless sudo. '*' = no password, but not a locked account.
useradd --create-home --shell /bin/bash deploy
usermod -p '*' deploy
printf 'deploy ALL=(ALL) NOPASSWD: ALL\n' > /etc/sudoers.d/deploy
chmod 0440 /etc/sudoers.d/deploy
visudo -cf /etc/sudoers.d/deploy

# sshd: lab drop-in, key file dir; host keys are generated per container at first start.
install -d -m 0755 /etc/ssh/consulctl-lab /run/sshd
install -m 0644 /tmp/consulctl-lab/sshd_config /etc/ssh/sshd_config.d/consulctl-lab.conf
rm -f /etc/ssh/ssh_host_*

# Every container gets its own machine id (systemd makes a transient one when the file is empty).
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
