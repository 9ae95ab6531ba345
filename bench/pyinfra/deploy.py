"""The pyinfra (v3) peer of `consulctl apply`: the same steps on the same hosts.

Run by bench/run as `pyinfra INVENTORY deploy.py -y --parallel N`; the inventory it generates
from the lab's TOML carries everything as host data (address, SSH user/key/known_hosts, sudo,
role, init and the agent values). Steps: directories, binary upload, HCL config,
unit/program, start servers, start clients, wait for a leader and all members alive.
"""

import shlex
from pathlib import Path

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.operations import files, server, systemd

d = host.data
SCRIPTS = Path(d.scripts_dir)
TEMPLATES = Path(d.templates_dir)
VALUES = {
    key: d.get(key)
    for key in (
        "bench_tool consul_version role datacenter domain node_name data_dir address log_level "
        "bootstrap_expect retry_join_hcl retry_interval raft_multiplier binary config_dir log_dir"
    ).split()
}


class SupervisorState(FactBase):
    """The consul program's state under supervisord (RUNNING, STOPPED, ...; empty: none)."""

    def command(self):
        return "supervisorctl status consul 2>/dev/null | awk '{print $2}' || true"

    def process(self, output):
        return output[0].strip() if output else ""


def sh(script, *args):
    """`sh -c SCRIPT sh ARGS...` for one of the shared scripts under bench/scripts/."""
    text = (SCRIPTS / script).read_text()
    return " ".join(["sh", "-c", shlex.quote(text), "sh", *map(shlex.quote, map(str, args))])


for path in (d.config_dir, d.data_dir, d.log_dir):
    files.directory(name=f"Directory {path}", path=path, present=True, mode="755")

binary = files.put(name="Consul binary", src=d.consul_binary_src, dest=d.binary, mode="755")

hcl = files.template(
    name="Agent config",
    src=str(TEMPLATES / "consul.hcl.j2"),
    dest=f"{d.config_dir}/consul.hcl",
    mode="640",
    jinja_env_kwargs={"trim_blocks": True},  # as Ansible renders
    **VALUES,
)

if d.init == "systemd":
    unit = files.template(
        name="systemd unit",
        src=str(TEMPLATES / "consul.service.j2"),
        dest="/etc/systemd/system/consul.service",
        mode="644",
        jinja_env_kwargs={"trim_blocks": True},  # as Ansible renders
        **VALUES,
    )
else:
    program = files.template(
        name="supervisord program",
        src=str(TEMPLATES / "supervisor-consul.conf.j2"),
        dest="/etc/supervisor/conf.d/consul.conf",
        mode="644",
        jinja_env_kwargs={"trim_blocks": True},  # as Ansible renders
        **VALUES,
    )


def start():
    # Decided before execution from the facts (pyinfra's two-phase model): `changed` is
    # "will change" here.
    if d.init == "systemd":
        systemd.service(
            name=f"Start {d.role}s (systemd)",
            service="consul.service",
            running=True,
            enabled=True,
            daemon_reload=unit.changed,
            restarted=binary.changed or hcl.changed or unit.changed,
        )
    else:
        prog_changed = program.changed
        restart = binary.changed or hcl.changed
        if prog_changed or restart or host.get_fact(SupervisorState) not in ("RUNNING", "STARTING"):
            server.shell(
                name=f"Start {d.role}s (supervisord)",
                commands=[sh("supervisor-start.sh", int(prog_changed), int(restart), 60)],
            )


# Servers first (all together: bootstrap_expect waits for them), then clients: pyinfra runs
# operations in the order of these lines, each on all of its hosts in parallel.
if d.role == "server":
    start()
if d.role == "client":
    start()

if host.name == d.first_server:
    server.shell(
        name="Leader and all members alive",
        commands=[sh("wait-cluster.sh", d.expected_members, 90)],
    )
