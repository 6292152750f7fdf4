"""A real local Ray cluster for tests: a head and more nodes started with ``ray start`` on this
machine, each advertising the ``greenbench`` resource, and stopped by their process ids (never
``ray stop``, which would stop any other Ray on the machine)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

RAY = str(Path(sys.executable).with_name("ray"))
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_DOCKER_CPU_WARNING": "1"}


_GIVEN: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now and that this process has not handed out before: the kernel
    may give the same free port to two binds in a row once the first socket is closed, and Ray
    refuses a node manager port equal to its GCS port (a CI run failed so)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


class RayCluster:
    """Nodes of one test cluster; every process it starts is found again by its temp folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # Ray's session folders, named in its processes' arguments; short: Ray's sockets live there
        # and a Unix socket path has at most 107 bytes
        self.temp = Path(tempfile.mkdtemp(prefix="gbray-"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.node_ports: list[int] = []

    def _start(self, *args: str) -> int:
        node_port = free_port()
        cmd = [
            RAY,
            "start",
            "--num-cpus=1",
            "--object-store-memory=100000000",
            "--disable-usage-stats",
            f"--node-manager-port={node_port}",
            "--resources",
            json.dumps({"greenbench": 1}),
            *args,
        ]
        out = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        self.node_ports.append(node_port)
        return node_port

    def start(self, nodes: int = 2) -> RayCluster:
        """The head (GCS on ``self.port``) and ``nodes - 1`` more nodes."""
        self._start(
            "--head",
            f"--port={self.port}",
            f"--temp-dir={self.temp}",
            "--include-dashboard=false",
            "--node-ip-address=127.0.0.1",
        )
        for _ in range(nodes - 1):
            self._start(f"--address={self.address}", "--node-ip-address=127.0.0.1")
        self.wait_nodes(nodes)
        return self

    def nodes(self) -> list[dict[str, object]]:
        """Ray's node table (id, alive, node manager port), read by a separate driver."""
        code = (
            f"import json, ray; ray.init(address={self.address!r}, logging_level='ERROR', "
            "log_to_driver=False);"
            "print(json.dumps([{'id': n['NodeID'], 'alive': n['Alive'], 'port': n['NodeManagerPort']}"
            " for n in ray.nodes()]))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return list(json.loads(out.stdout.strip().splitlines()[-1]))

    def wait_nodes(self, alive: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while sum(bool(n["alive"]) for n in self.nodes()) != alive:
            assert time.monotonic() < deadline, f"the cluster never had {alive} alive nodes"
            time.sleep(1)

    def node_id(self, port: int) -> str:
        return next(str(n["id"]) for n in self.nodes() if n["port"] == port and n["alive"])

    def processes(self) -> list[psutil.Process]:
        """Every process of this cluster (its session folder or a node's port in its arguments)."""
        found: dict[int, psutil.Process] = {}
        for p in psutil.process_iter(["pid", "cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            ours = str(self.temp) in cmd or any(
                f"node_manager_port={port}" in cmd for port in self.node_ports
            )
            if ours:
                try:  # Ray's agents rename themselves (ray::…): found as children of ours
                    found.update({c.pid: c for c in [p, *p.children(recursive=True)]})
                except psutil.Error:
                    found[p.pid] = p
        return list(found.values())

    def kill_node(self, port: int) -> None:
        """The node with node manager port ``port`` dies as a machine would: its raylet and every
        process under it (its workers, and the jobs they run) at once."""
        for p in psutil.process_iter(["pid", "cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if "raylet" in cmd and f"--node_manager_port={port}" in cmd:
                tree = [p, *p.children(recursive=True)]
                for q in tree:
                    try:
                        q.send_signal(signal.SIGKILL)
                    except psutil.Error:
                        pass

    def stop(self) -> None:
        """Kill every process of this cluster, whatever state it is in."""
        procs = self.processes()
        for p in procs:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.Error:
                pass
        psutil.wait_procs(procs, timeout=15)
        shutil.rmtree(self.temp, ignore_errors=True)
