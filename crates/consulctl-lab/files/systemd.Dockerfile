# consulctl lab host with systemd as PID 1 (built by `consulctl lab up`).
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ENV container=docker
COPY . /tmp/consulctl-lab/
RUN sh /tmp/consulctl-lab/setup-common.sh \
 && sh /tmp/consulctl-lab/setup-systemd.sh \
 && rm -rf /tmp/consulctl-lab
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
