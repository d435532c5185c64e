"""`nesy-gedi compare --backend ray` on a real Ray cluster (a head started on 127.0.0.1): a 2-method ×
2-seed grid whose runs share each seed's pretraining, one Ray worker process killed mid-run, and still every
run's metrics; a rerun reuses them."""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from nesy_gedi.cli import main

from .conftest import ROOT
from .test_pipeline import PRETRAIN

RAY = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"


@pytest.fixture(scope="module")
def cluster():
    """A one-node Ray cluster with 2 CPUs and token authentication, as `ray start --head` makes one on a
    cluster's first node; this process joins it with the same token."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    before = {key: os.environ.get(key) for key in auth}
    os.environ.update(auth)
    start = [RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2"]
    start += ["--include-dashboard=false", "--disable-usage-stats"]
    subprocess.run(start, check=True, capture_output=True)
    yield f"127.0.0.1:{port}"
    subprocess.run([RAY, "stop", "--force"], capture_output=True)
    for key, value in before.items():
        os.environ.pop(key) if value is None else os.environ.update({key: value})


def _parent(pid: str) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def kill_one_worker(out: Path, killed: list[int], stop: threading.Event) -> None:
    """Once a run of the grid has worked for a second, SIGKILL the Ray worker process that started it."""
    seen: dict[str, float] = {}
    while not stop.is_set() and not killed:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                command = Path(f"/proc/{pid}/cmdline").read_text()
                if "nesy_gedi\0run" in command and str(out) in command:
                    if time.time() - seen.setdefault(pid, time.time()) > 1.0:
                        worker = _parent(pid)
                        os.kill(worker, signal.SIGKILL)
                        killed.append(worker)
                        return
            except (FileNotFoundError, ProcessLookupError):
                continue
        time.sleep(0.1)


def test_a_grid_on_ray_survives_a_killed_worker_and_is_reused(cluster, tmp_path):
    out = tmp_path / "cmp"
    pretrain = {**PRETRAIN, "name": f"ray-test-{uuid.uuid4().hex[:8]}"}
    spec = {"task": str(ROOT / "tasks" / "gedi_mnist.yaml"), "method": "gedi-nogen", "set": pretrain}
    args = ["compare", str(ROOT / "tasks" / "mnist_add.yaml"), "--methods", "dpl,gedi-pretrained", "--seeds", "2"]
    args += ["--backend", "ray", "--address", cluster, "--out", str(out)]
    for item in ("train.iterations=6", "data.train_size=32", "data.test_size=10", "train.batch_size=8"):
        args += ["--set", item]
    args += ["--set", f"networks.mnist_net.pretrain={json.dumps(spec)}"]
    killed: list[int] = []
    stop = threading.Event()
    watcher = threading.Thread(target=kill_one_worker, args=(out, killed, stop))
    watcher.start()
    try:
        assert main(args) == 0
    finally:
        stop.set()
        watcher.join()
    assert killed, "no worker was killed mid-run"
    rows = list(csv.DictReader((out / "comparison.csv").open()))
    assert sorted((r["method"], r["seed"], r["status"]) for r in rows) == [
        ("dpl", "0", "finished"),
        ("dpl", "1", "finished"),
        ("gedi-pretrained", "0", "finished"),
        ("gedi-pretrained", "1", "finished"),
    ]
    # each seed's pretraining was trained once, by whichever run got there first, and shared
    folders = {}
    for metrics in out.glob("*-seed*/metrics.json"):
        found = json.loads(metrics.read_text())
        folders.setdefault(found["seed"], set()).add(found["pretraining"]["mnist_net"]["folder"])
    assert {seed: len(f) for seed, f in folders.items()} == {0: 1, 1: 1}
    for (folder,) in folders.values():
        steps = [json.loads(line)["step"] for line in (Path(folder) / "train_log.jsonl").read_text().splitlines()]
        assert steps == list(range(1, PRETRAIN["train.iterations"] + 1))  # no step trained twice

    logs = {p.name: p.stat().st_mtime_ns for p in out.glob("*.log")}
    assert main(args) == 0  # everything reused: no run is started again
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.log")} == logs


def test_the_ray_backend_without_ray_is_one_clear_message(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as where it is not installed
    args = ["compare", str(ROOT / "tasks" / "mnist_add.yaml"), "--methods", "dpl", "--seeds", "1"]
    assert main([*args, "--backend", "ray", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "--backend ray needs Ray: pip install 'nesy_gedi[ray]'" in err and "Traceback" not in err
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(
    "address, expected",
    [
        ("not-an-address", "expected auto, HOST:PORT"),
        ("10.0.0.5:99999", "expected auto, HOST:PORT"),
        ("127.0.0.1:1", "no Ray cluster answers there within 5 s"),
    ],
)
def test_a_bad_or_silent_address_is_one_message_at_once(tmp_path, capsys, address, expected):
    args = ["compare", str(ROOT / "tasks" / "mnist_add.yaml"), "--methods", "dpl", "--seeds", "1"]
    started = time.monotonic()
    assert main([*args, "--backend", "ray", "--address", address, "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert f"--address {address}: {expected}" in err and "Traceback" not in err, err
    assert time.monotonic() - started < 30 and not (tmp_path / "c").exists()
