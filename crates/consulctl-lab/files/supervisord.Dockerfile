# consulctl lab host with supervisord as PID 1 (built by `consulctl lab up`).
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY . /tmp/consulctl-lab/
RUN sh /tmp/consulctl-lab/setup-common.sh \
 && sh /tmp/consulctl-lab/setup-supervisord.sh \
 && install -m 0644 /tmp/consulctl-lab/supervisor-sshd.conf /etc/supervisor/conf.d/sshd.conf \
 && install -m 0755 /tmp/consulctl-lab/supervisord-entrypoint.sh /usr/local/sbin/consulctl-lab-entrypoint \
 && rm -rf /tmp/consulctl-lab
CMD ["/usr/local/sbin/consulctl-lab-entrypoint"]
