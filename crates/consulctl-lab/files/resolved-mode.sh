#!/bin/sh
# consulctl lab: "resolved mode" of a systemd lab host (`consulctl lab up --resolved-hosts`),
# installed as /usr/local/sbin/consulctl-lab-resolved-mode. Its units run only when PID 1 was
# started as `/sbin/init consulctl.lab.resolved` (ConditionKernelCommandLine: in a container
# systemd reads its own arguments as the kernel command line); the container has CAP_SYS_ADMIN.
#
#   boot        every boot, before systemd-resolved: removes Docker's bind mount of its
#               resolv.conf (at /etc/resolv.conf, or after a container restart at the symlink's
#               target), keeping a copy; at first boot makes /etc/resolv.conf the symlink to
#               resolved's stub file and enables and starts systemd-resolved.
#   docker-dns  after systemd-resolved (re)starts: Docker's DNS server (127.0.0.11) becomes the
#               per-link DNS server of the default-route interface, catch-all domain `~.`, the
#               way DHCP/networkd would set up a real host's uplink.
set -eu

STATE=/var/lib/consulctl-lab
DOCKER_RESOLV="$STATE/docker-resolv.conf"
DONE="$STATE/resolved-mode.done"
STUB=../run/systemd/resolve/stub-resolv.conf

# Mount points exactly at $1 (field 5 of mountinfo; the lab's paths have no escapes).
mounted_at() {
    awk -v p="$1" '$5 == p { n++ } END { exit n ? 0 : 1 }' /proc/self/mountinfo
}

boot() {
    install -d -m 0755 "$STATE"
    target=$(readlink -f /etc/resolv.conf || true)
    for p in /etc/resolv.conf $target; do
        n=0
        while mounted_at "$p"; do
            if [ "$n" = 0 ]; then
                cp "$p" "$DOCKER_RESOLV.tmp" && mv -f "$DOCKER_RESOLV.tmp" "$DOCKER_RESOLV"
            fi
            umount "$p"
            n=$((n + 1))
            if [ "$n" -ge 8 ]; then
                echo "consulctl-lab: $p is still a mount point after $n umounts" >&2
                exit 1
            fi
        done
        [ "$n" = 0 ] || echo "consulctl-lab: removed Docker's resolv.conf mount at $p"
    done
    if [ ! -e "$DONE" ]; then
        ln -sfn "$STUB" /etc/resolv.conf
        systemctl enable --no-reload systemd-resolved.service
        # --no-block: this unit is ordered before systemd-resolved.service.
        systemctl start --no-block systemd-resolved.service
        touch "$DONE"
        echo "consulctl-lab: /etc/resolv.conf -> $STUB; systemd-resolved enabled"
    fi
}

docker_dns() {
    servers=$(awk '$1 == "nameserver" { print $2 }' "$DOCKER_RESOLV" 2>/dev/null || true)
    [ -n "$servers" ] || servers=127.0.0.11
    dev=$(ip -4 route show default | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }')
    [ -n "$dev" ] || dev=eth0
    # shellcheck disable=SC2086 # one argument per server
    resolvectl dns "$dev" $servers
    resolvectl domain "$dev" '~.'
    resolvectl default-route "$dev" yes
    echo "consulctl-lab: $dev: DNS servers" $servers "for ~."
}

case "${1:-}" in
    boot) boot ;;
    docker-dns) docker_dns ;;
    *) echo "usage: $0 boot|docker-dns" >&2; exit 2 ;;
esac
