#!/bin/sh
# consulctl lab app: busybox httpd on port 8080 serving /srv. As PID 1 this shell exits on
# SIGTERM/SIGINT (httpd alone would ignore them and `docker stop` would wait 10 s).
trap 'kill "$pid" 2>/dev/null; exit 0' TERM INT
hostname > /srv/hostname
httpd -f -p 8080 -h /srv &
pid=$!
wait "$pid"
