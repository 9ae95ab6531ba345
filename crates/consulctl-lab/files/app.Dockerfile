# consulctl lab app: a tiny image for test applications (built by consulctl-lab, no registry).
# Only a static busybox (Debian's busybox-static); the default command serves HTTP on 8080 from
# /srv (index.html, health, hostname). No HEALTHCHECK: tests pass `--health-cmd`.
FROM scratch
COPY rootfs/ /
RUN ["/bin/busybox", "--install", "-s", "/bin"]
EXPOSE 8080
CMD ["/bin/sh", "/app.sh"]
