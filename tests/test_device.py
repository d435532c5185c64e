"""Every step on the run's device: a training step creates no tensor on the default (CPU) device to copy it
over and reads the device once (the loop's readout of the step's numbers), whatever the engine or method.
Checked on the CPU by watching torch's functions, since these machines have no GPU."""

from __future__ import annotations

import tempfile
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from nesy_gedi.assembly.task import assemble, load_task
from nesy_gedi.data.mnist import default_cache_dir
from nesy_gedi.training.loop import Trainer
from nesy_gedi.training.rundir import RunDir

from .conftest import ROOT

FACTORIES = {torch.tensor, torch.zeros, torch.ones, torch.full, torch.arange, torch.empty, torch.randn, torch.rand}
READOUTS = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.cpu, torch.Tensor.numpy, torch.Tensor.__float__}
READOUTS |= {torch.Tensor.__bool__, torch.Tensor.__int__}
ALLOWED = ("torch/optim/",)
"""Adam's step counters live on the CPU by torch's design (`capturable=False`)"""


class Watch(TorchFunctionMode):
    """Records a factory call without a device and every readout, each with the package line that made it."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if (func in FACTORIES and kwargs.get("device") is None) or func in READOUTS:
            frames = traceback.extract_stack()[:-1]
            where = [f for f in frames if any(k in f.filename for k in ("nesy_gedi", "torch/optim", __file__))]
            if where and not any(a in where[-1].filename for a in ALLOWED):
                self.found.append(f"{func.__name__} in {where[-1].name}")
        return func(*args, **kwargs)


CASES = {
    "compiled engine, dpl": ("mnist_add.yaml", {}),
    "chain engine": ("mnist_multi_add_15.yaml", {"query.inputs.A": "3", "query.inputs.B": "3"}),
    "t(_) probabilities": ("mnist_faulty_sensor.yaml", {}),
    "swav joint term": ("mnist_add_gedi.yaml", {"method": "swav"}),
    "entropy": ("mnist_add_gedi.yaml", {"method": "entropy"}),
    "gedi joint term": ("mnist_add_gedi.yaml", {"method": "gedi", "sgld.steps": "2"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_training_step_stays_on_the_device(case):
    task, sets = CASES[case]
    config = load_task(ROOT / "tasks" / task, {"data.train_size": "32", "data.test_size": "8", **sets})
    assembled = assemble(config, torch.device("cpu"), default_cache_dir())
    trainer = Trainer(assembled.learner, len(assembled.train_set), config.train, 0, RunDir(Path(tempfile.mkdtemp())))
    trainer._train_step(np.arange(4))  # the first step compiles and caches; later steps are the steady state
    with Watch() as watch:
        trainer._train_step(np.arange(4, 8))
    found = [f for f in watch.found if f != "__int__ in sample"]  # SGLD: how many chains restart from noise
    assert found == ["tolist in _read"], found


def test_the_watch_sees_a_cpu_tensor_and_a_readout():
    from nesy_gedi.training.loop import _read

    with Watch() as watch:
        torch.zeros(2, device="cpu")
        torch.zeros(2)
        _read({}, torch.zeros((), device="cpu"), {})
    assert watch.found == ["zeros in test_the_watch_sees_a_cpu_tensor_and_a_readout", "tolist in _read"]
