"""Where a grid of runs executes: local processes (the default) or Ray tasks on a cluster.

Both execute the same job function (one `nesy-gedi run` or `pretrain` process writing its own run folder),
so reuse of finished runs, resumption of interrupted ones and the pretraining cache behave the same; Ray
only decides on which machine each job runs, with the CPUs and GPUs it asks for. On a cluster the output
and cache folders must be on a file system every node sees at the same path. Both report jobs as they
finish, so `compare` can show progress.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Protocol

from nesy_gedi.errors import UserError

logger = logging.getLogger(__name__)

PARENT = "NESY_GEDI_PARENT"
"""environment variable: the process id whose death must end this run process (a killed Ray worker must
not leave its run going on beside the retry Ray starts)"""
CONNECT_SECONDS = 5.0
"""how long a `--address HOST:PORT` may take to answer"""
RETRIES = 3
"""times Ray restarts a job whose worker process or node died; the retry resumes the run folder"""


def die_with_parent() -> None:
    """In a run process started by a grid job (Linux): be killed when the process that started it dies."""
    parent = os.environ.get(PARENT)
    if not parent or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != int(parent):  # it died before the line above
        os._exit(1)


class Backend(Protocol):
    def submit(self, key: Any, work: Callable[[], dict]) -> None: ...

    def finished(self, timeout: float) -> list[tuple[Any, dict]]:
        """Jobs finished since the last call (waiting up to `timeout` seconds for one), with their results."""
        ...

    def close(self) -> None: ...


class LocalBackend:
    """`workers` jobs at a time in this machine's processes."""

    def __init__(self, workers: int) -> None:
        self.pool = ThreadPoolExecutor(workers)
        self.pending: dict[Future, Any] = {}

    def submit(self, key: Any, work: Callable[[], dict]) -> None:
        self.pending[self.pool.submit(work)] = key

    def finished(self, timeout: float) -> list[tuple[Any, dict]]:
        done, _ = wait(list(self.pending), timeout=timeout, return_when=FIRST_COMPLETED)
        return [(self.pending.pop(future), future.result()) for future in done]

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _call(work: Callable[[], dict]) -> dict:
    return work()


class RayBackend:
    """Every job a Ray task asking for `cpus` CPUs and `gpus` GPUs, on the cluster at `address` (`auto`: the
    one this machine belongs to; None: a local cluster started for this call)."""

    def __init__(self, address: str | None, cpus: int, gpus: float, workers: int = 1) -> None:
        _check_reachable(address)
        try:
            import ray
        except ImportError:
            raise UserError(
                "--backend ray needs Ray: pip install 'nesy_gedi[ray]' (or pip install -c constraints.txt ray)"
            ) from None
        self.ray = ray
        # a cluster started here gets the CPUs the grid asks for (`workers` runs of `cpus` threads), no more
        started = {} if address else {"num_cpus": min(os.cpu_count() or 1, max(1, workers) * cpus)}
        try:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False, **started)
        except ConnectionError as exc:
            raise UserError(
                f"--address {address}: no Ray cluster there ({exc}); start one with ray start --head"
            ) from exc
        where = f"the cluster at {address}" if address else "a local cluster started for this call"
        logger.info("ray: attached to %s, %s CPUs", where, ray.cluster_resources().get("CPU", 0))
        self.task = ray.remote(_call).options(num_cpus=cpus, num_gpus=gpus, max_retries=RETRIES)
        self.pending: dict[Any, Any] = {}

    def submit(self, key: Any, work: Callable[[], dict]) -> None:
        self.pending[self.task.remote(work)] = key

    def finished(self, timeout: float) -> list[tuple[Any, dict]]:
        done, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=timeout)
        found = []
        for ref in done:
            key = self.pending.pop(ref)
            try:
                found.append((key, self.ray.get(ref)))
            except self.ray.exceptions.RayError as exc:  # retries used up: counted as failed, the grid goes on
                found.append((key, {"status": "failed", "error": f"ray: {type(exc).__name__}: {exc}"[:500]}))
        return found

    def close(self) -> None:
        self.ray.shutdown()


def _check_reachable(address: str | None) -> None:
    """A `host:port` address must name a port that answers within a few seconds (Ray itself would retry for
    minutes); `auto` and `ray://` addresses are Ray's to find."""
    if address is None or address == "auto" or address.startswith("ray://"):
        return
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--address {address}: expected auto, HOST:PORT (e.g. 10.0.0.5:6379) or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as exc:
        raise UserError(
            f"--address {address}: no Ray cluster answers there within {CONNECT_SECONDS:g} s ({exc.strerror or exc}); "
            "start one with `ray start --head`, or check the address"
        ) from None


def make_backend(name: str, workers: int, address: str | None, cpus: int, gpus: float) -> Backend:
    if name == "local":
        if address is not None:
            raise UserError("--address is for --backend ray; drop it or add --backend ray")
        return LocalBackend(workers)
    if name == "ray":
        return RayBackend(address, cpus, gpus, workers)
    raise UserError(f"--backend {name}: unknown; use local or ray")
