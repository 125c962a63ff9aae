"""Ray for tests, stopped by pid, never `ray stop`: a head on loopback (`start_head`: its own
temp dir and ports), and a cluster of several nodes in this process (`local_cluster`:
`ray.cluster_utils.Cluster`, nodes that may declare GPUs the machine does not have).

`ray stop` stops every Ray process on the host (other people's tests too), so `LoopbackHead`
stops only the processes of its own session: those whose command line names its temp dir,
its Ray client server (found by its port), and their descendants (read from /proc: Linux);
`processes_naming` and `stop_processes` do the same for any private temp dir.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
# Ray refuses a dashboard or metrics port inside its worker port range (10002-19999).
_PORT_RANGE = (20000, 32000)


def free_port(taken: set[int]) -> int:
    """A TCP port outside Ray's worker range that nothing listens on now."""
    for _ in range(200):
        port = _PORT_RANGE[0] + int.from_bytes(os.urandom(2), "big") % (
            _PORT_RANGE[1] - _PORT_RANGE[0]
        )
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise RuntimeError("no free port found in 20000-32000")


def ray_env() -> dict[str, str]:
    """The environment of the test's Ray commands: this venv first on PATH (so jobs find
    `agentune`), no usage stats, Ray's token authentication on."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env["RAY_AUTH_MODE"] = "token"
    env.pop("RAY_ADDRESS", None)
    return env


@dataclass
class LoopbackHead:
    """A started head: its ports and temp dir. Build with `start_head()`."""

    temp_dir: Path
    gcs_port: int
    dashboard_port: int
    metrics_port: int
    client_port: int
    agent_port: int
    start_s: float = 0.0
    pids: set[int] = field(default_factory=set)

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def metrics_text(self) -> str:
        """The Prometheus export ("" while it cannot be read)."""
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=5) as reply:
                return str(reply.read().decode())
        except OSError:
            return ""

    def own_processes(self) -> set[int]:
        """Pids of this head's processes and all their descendants."""
        marker = str(self.temp_dir)
        table = _process_table()
        roots = {
            pid
            for pid, (_, cmdline) in table.items()
            if marker in cmdline
            or ("ray.util.client.server" in cmdline and f"--port={self.client_port}" in cmdline)
        }
        roots |= {pid for pid in self.pids if pid in table}
        found = set(roots)
        grew = True
        while grew:  # add children until nothing new: descendants at any depth
            children = {pid for pid, (ppid, _) in table.items() if ppid in found} - found
            found |= children
            grew = bool(children)
        return found - _ancestry(table)  # never this process (its argv may name the dir)

    def stop(self) -> None:
        """SIGTERM this head's processes, SIGKILL what is left after 10 s; remove the dir."""
        pids = self.own_processes()
        _signal_all(pids, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while pids and time.monotonic() < deadline:
            time.sleep(0.2)
            pids = {pid for pid in pids if _alive(pid)}
        _signal_all(pids, signal.SIGKILL)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _process_table() -> dict[int, tuple[int, str]]:
    """`{pid: (parent pid, command line)}` of every process, from /proc."""
    table: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended meanwhile
            continue
        # stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        table[int(entry.name)] = (ppid, cmdline)
    return table


def _ancestry(table: dict[int, tuple[int, str]]) -> set[int]:
    """This process and its ancestors."""
    pids: set[int] = set()
    pid = os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        pid = table.get(pid, (0, ""))[0]
    return pids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; its parent has not reaped it yet


def _signal_all(pids: set[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def start_head(num_cpus: int = 2) -> LoopbackHead:
    """`ray start --head` on 127.0.0.1 with free ports outside the worker range and a short
    temp dir of its own (Unix socket paths must stay under 108 characters)."""
    taken: set[int] = set()
    head = LoopbackHead(
        temp_dir=Path(tempfile.mkdtemp(prefix="agr", dir="/tmp")),
        gcs_port=free_port(taken),
        dashboard_port=free_port(taken),
        metrics_port=free_port(taken),
        client_port=free_port(taken),
        agent_port=free_port(taken),
    )
    cmd = [
        str(VENV_BIN / "ray"),
        "start",
        "--head",
        "--node-ip-address=127.0.0.1",
        f"--port={head.gcs_port}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={head.dashboard_port}",
        f"--metrics-export-port={head.metrics_port}",
        f"--ray-client-server-port={head.client_port}",
        f"--dashboard-agent-listen-port={head.agent_port}",
        f"--num-cpus={num_cpus}",
        f"--temp-dir={head.temp_dir}",
        "--disable-usage-stats",
    ]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=ray_env(), capture_output=True, text=True, timeout=120)
    head.start_s = time.perf_counter() - t0
    head.pids = head.own_processes()
    if done.returncode != 0:
        head.stop()
        raise RuntimeError(f"ray start failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return head


@contextlib.contextmanager
def loopback_head(num_cpus: int = 2) -> Iterator[LoopbackHead]:
    """A head for the duration of the block, stopped by pid afterwards."""
    head = start_head(num_cpus)
    try:
        yield head
    finally:
        head.stop()


def job_info(head: LoopbackHead, submission_id: str) -> dict[str, object]:
    """The job's details from the dashboard's REST API (with the auth token)."""
    from search.submit import auth_headers

    request = urllib.request.Request(
        f"{head.dashboard_url}/api/jobs/{submission_id}", headers=auth_headers()
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        info: dict[str, object] = json.loads(reply.read().decode())
    return info


# ---- several Ray nodes in this process: ray.cluster_utils.Cluster ---------------------------

# `ray.init(address=...)` rewrites 127.0.0.1 and localhost into this machine's outward address
# (Ray's `services.resolve_ip_for_localhost`), where a `Cluster` node does not listen (its GCS
# binds its node address only); 127.0.0.2 is loopback too, and Ray leaves it as it is.
CLUSTER_IP = "127.0.0.2"


@dataclass
class LocalCluster:
    """A head (no CPUs: trials run on the workers only) and worker nodes, all on loopback,
    in a temp dir of their own; this process's driver is connected to it.
    Build with `local_cluster()`."""

    cluster: Any  # ray.cluster_utils.Cluster
    temp_dir: Path
    workers: list[Any]  # ray._private.node.Node, in the order they were asked for
    start_s: float = 0.0

    def worker_ids(self) -> list[str]:
        """The workers' Ray node ids, in `workers` order."""
        return [str(node.node_id) for node in self.workers]

    def remove_worker(self, node_id: str) -> None:
        """Kill one worker node's processes at once (a node lost mid-trial: no graceful
        shutdown), as `Cluster.remove_node` does."""
        node = next(n for n in self.workers if n.node_id == node_id)
        self.cluster.remove_node(node, allow_graceful=False)
        self.workers.remove(node)


def processes_naming(marker: str) -> set[int]:
    """Pids of the processes whose command line names `marker` (a private temp dir), and all
    their descendants; never this process or its ancestors."""
    table = _process_table()
    found = {pid for pid, (_, cmdline) in table.items() if marker in cmdline}
    grew = True
    while grew:
        children = {pid for pid, (ppid, _) in table.items() if ppid in found} - found
        found |= children
        grew = bool(children)
    return found - _ancestry(table)


def stop_processes(pids: set[int], grace_s: float = 10.0) -> None:
    """SIGTERM `pids`, then SIGKILL the ones still alive after `grace_s`."""
    _signal_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while pids and time.monotonic() < deadline:
        time.sleep(0.2)
        pids = {pid for pid in pids if _alive(pid)}
    _signal_all(pids, signal.SIGKILL)


def start_local_cluster(workers: Sequence[Mapping[str, float]]) -> LocalCluster:
    """A head and one worker node per entry of `workers` (`{"num_cpus": 2, "num_gpus": 2}`;
    a node may declare GPUs this machine does not have), then `ray.init` to it."""
    import ray
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    temp_dir = Path(tempfile.mkdtemp(prefix="agc", dir="/tmp"))  # short: socket paths
    common: dict[str, Any] = {"node_ip_address": CLUSTER_IP, "temp_dir": str(temp_dir)}
    t0 = time.perf_counter()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "include_dashboard": False, **common},
    )
    local = LocalCluster(cluster=cluster, temp_dir=temp_dir, workers=[])
    try:
        for resources in workers:
            local.workers.append(cluster.add_node(**{**resources, **common}))
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, _node_ip_address=CLUSTER_IP, log_to_driver=False)
    except BaseException:
        stop_local_cluster(local)
        raise
    local.start_s = time.perf_counter() - t0
    return local


def stop_local_cluster(local: LocalCluster) -> None:
    """Disconnect, remove every node, stop any process left naming its temp dir, remove it."""
    import ray

    ray.shutdown()
    try:
        local.cluster.shutdown()
    finally:
        stop_processes(processes_naming(str(local.temp_dir)))
        shutil.rmtree(local.temp_dir, ignore_errors=True)


@contextlib.contextmanager
def local_cluster(workers: Sequence[Mapping[str, float]]) -> Iterator[LocalCluster]:
    """`start_local_cluster` for the duration of the block, stopped afterwards."""
    local = start_local_cluster(workers)
    try:
        yield local
    finally:
        stop_local_cluster(local)


def trial_reports(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """`{trial id: its results in order}` from every trial `result.json` (JSON lines) under
    `folder`: a Tune experiment folder once it is synced, or, while the experiment runs, the
    Ray session folder, where the driver writes them as they arrive (`driver_artifacts`).
    A line still being written is skipped; a trial found twice keeps its longer file."""
    reports: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(folder.rglob("result.json")):
        rows = []
        with contextlib.suppress(OSError):
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                with contextlib.suppress(ValueError):
                    rows.append(json.loads(line))
        trial = str(rows[0].get("trial_id", path.parent.name)) if rows else ""
        if rows and len(rows) > len(reports.get(trial, [])):
            reports[trial] = rows
    return reports
