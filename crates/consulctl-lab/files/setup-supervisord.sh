#!/bin/sh
# consulctl lab: supervisord image setup (runs at build time).
set -eu
# systemd-resolved needs systemd as PID 1: a supervisord host does not have it (dpkg --purge
# works offline). dnsmasq stays installed; nothing starts it (consulctl runs it when needed).
dpkg --purge systemd-resolved
# nginx and haproxy stay installed too (base image); no supervisord program starts them
# (`consulctl apply` adds one where the inventory asks).
