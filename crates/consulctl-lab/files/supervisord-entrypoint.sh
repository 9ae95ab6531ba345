#!/bin/sh
# consulctl lab: PID 1 of the supervisord image. Host keys are made at first start only.
set -eu
ssh-keygen -A
install -d -m 0755 /run/sshd
install -d -m 0755 /var/log/supervisor
exec /usr/bin/supervisord -n -c /etc/supervisor/supervisord.conf
