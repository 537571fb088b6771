"""Connecting to Ray and sizing work to it.

    from rag_bench.distributed.cluster import connect, cluster_cpus
    connect("local", num_cpus=2)      # a local cluster of 2 CPUs (the tests); "auto": the running cluster
    connect("ray://head:10001")       # a remote cluster through Ray Client

The workers import rag_bench from their own Python environment: on a cluster, every node needs the same
checkout and virtualenv at the same path (or a shared file system), and the run folder and DATA_DIR must
be on a file system every node sees, since each finished step is written there by the worker that ran it.
"""

from __future__ import annotations

import os
import socket
from typing import Any

LOCAL = "local"  # `--ray` without an address: start (or join) a cluster on this machine
# Passed to every worker: offline Hugging Face, no tokenizer threads next to torch's, and this checkout first.
WORKER_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM", "PYTHONPATH")


class RayUnavailable(RuntimeError):
    """Ray is not installed or the cluster cannot be reached; the message says what to do."""


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayUnavailable("--ray needs Ray: pip install 'ray[data,train]==2.60.0' (requirements.txt)") from None
    return ray


def connect(address: str = LOCAL, *, num_cpus: int | None = None) -> Any:
    """Join (or start) a cluster once per process and return the ``ray`` module.

    ``address`` is ``"local"`` (a new local cluster, ``num_cpus`` of it), ``"auto"`` (the cluster started
    on this node with ``ray start``), ``HOST:PORT`` or ``ray://HOST:10001``. An already connected process
    keeps its connection (a test session's cluster, a driver that resumes).
    """
    ray = import_ray()
    if ray.is_initialized():
        return ray
    env = {name: os.environ[name] for name in WORKER_ENV if name in os.environ}
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Ray starts workers at niceness 15, below its raylet. Our workers do the experiment's work, so on a machine
    # shared with other jobs that made steps on Ray slower than the same steps run here (answering inside an actor:
    # 1.27x the direct time at niceness 15, 1.045x at 0, load 4-5, bench/ray_bench.py); at 0 they share like the driver.
    env.setdefault("RAY_worker_niceness", "0")
    kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env}, "log_to_driver": False,
                              "include_dashboard": False, "configure_logging": False}
    if address == LOCAL:
        kwargs["num_cpus"] = num_cpus
    else:
        check_reachable(address)
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except ConnectionError as exc:
        raise RayUnavailable(f"--ray {address}: cannot reach a Ray cluster ({exc}); start one with "
                             "`ray start --head` or give --ray without an address for a local one") from None
    return ray


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse a HOST:PORT nobody listens on at once: ``ray.init`` would retry it for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms: Ray resolves and reports them itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise RayUnavailable(f"--ray {address}: cannot reach a Ray cluster ({exc.strerror or exc}); start one "
                             "with `ray start --head` or give --ray without an address for a local one") from None


def cluster_cpus(ray: Any) -> int:
    return int(ray.cluster_resources().get("CPU", 0))


def cluster_gpus(ray: Any) -> int:
    return int(ray.cluster_resources().get("GPU", 0))
