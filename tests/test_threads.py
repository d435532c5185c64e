"""The thread governor: the cores other processes leave free, and one thread when a second does not help."""

from __future__ import annotations

import json

import pytest
import torch

from nesy_gedi.training.threads import ThreadGovernor


class Machine:
    """A fake clock and CPU meter: `others` cores busy with other processes, this one using its threads."""

    def __init__(self, others: float = 0.0) -> None:
        self.t, self.others, self.busy, self.own = 0.0, others, 0.0, 0.0

    def run(self, seconds: float, threads: int) -> None:
        self.t += seconds
        self.own += seconds * threads
        self.busy += seconds * (threads + self.others)

    def usage(self) -> tuple[float, float]:
        return self.busy, self.own


@pytest.fixture(autouse=True)
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def train(governor: ThreadGovernor, machine: Machine, steps: int, step_seconds) -> None:
    for _ in range(steps):
        took = step_seconds(governor.threads)
        machine.run(took, governor.threads)
        governor.after_step(took)


def make(machine: Machine) -> ThreadGovernor:
    return ThreadGovernor(cores=2, interval=2.0, probe=5, usage=machine.usage, clock=lambda: machine.t)


def test_a_step_that_two_threads_halve_keeps_both_cores_on_an_idle_machine():
    machine = Machine()
    governor = make(machine)
    assert governor.threads == 2
    train(governor, machine, 200, lambda threads: 0.1 / threads)
    assert governor.useful == 2 and governor.threads == torch.get_num_threads() == 2
    assert governor.history == [(0, 2), (6, 1), (12, 2)]  # probed: 6 steps with two, 6 with one


def test_a_tiny_step_keeps_to_one_thread():
    machine = Machine()
    governor = make(machine)
    train(governor, machine, 200, lambda threads: 0.01 * (1 + 0.05 * (threads - 1)))  # no faster with two
    assert governor.useful == 1 and governor.threads == torch.get_num_threads() == 1


def test_another_busy_process_takes_a_core_and_gives_it_back():
    machine = Machine(others=1.0)
    governor = make(machine)
    machine.run(1.0, 1)  # the other process ran before the first check
    train(governor, machine, 50, lambda threads: 0.1 / threads)
    assert governor.threads == 1  # beside one busy process on two cores: one thread, no collapse
    machine.others = 0.0
    train(governor, machine, 200, lambda threads: 0.1 / threads)
    assert governor.useful == 2 and governor.threads == 2  # probed once the core was free, kept both
    machine.others = 1.0
    train(governor, machine, 50, lambda threads: 0.1 / threads)
    assert governor.threads == 1


def test_a_run_keeps_the_threads_its_task_gives(task_file, tmp_path):
    import nesy_gedi

    path = task_file()
    tiny = {"data": {"train_size": 32, "test_size": 16}, "train": {"iterations": 3, "batch_size": 8}}
    given = nesy_gedi.load_task(path, train={**tiny["train"], "threads": 1}, data=tiny["data"]).train(
        out=tmp_path / "a"
    )
    assert "torch_threads" not in given
    assert json.loads((tmp_path / "a" / "versions.json").read_text())["torch_threads"] == "1"
    chosen = nesy_gedi.load_task(path, **tiny).train(out=tmp_path / "b")
    assert chosen["torch_threads"][0][0] == 0 and 1 <= chosen["torch_threads"][0][1]
