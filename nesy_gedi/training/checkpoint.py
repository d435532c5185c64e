"""What a run folder's checkpoint holds, and a network's weights exported alone.

`checkpoint.pt` is everything a resumed run needs (networks, optimisers, schedules, the learner's own
state such as SGLD chains, every RNG, the step); only this module knows its layout. `network.pt` (a
pretraining run) and `network_<name>.pt` (a program run) hold one network's weights with its
architecture and output size, loadable with `torch.load(..., weights_only=True)`: that is what another
task's `networks.<name>.init` reads.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nesy_gedi.errors import UserError, summary
from nesy_gedi.networks import build_network
from nesy_gedi.training.rundir import CHECKPOINT, RunDir

PRETRAINED = "network.pt"
"""the exported network of a pretraining run"""
NETWORK = "net"
"""the name of a pretraining run's network in its checkpoint"""

Stateful = dict[str, nn.Module | torch.optim.Optimizer | torch.optim.lr_scheduler.LRScheduler]


def save_checkpoint(
    run: RunDir,
    step: int,
    seconds: float,
    networks: Stateful,
    optimizers: Stateful,
    schedulers: Stateful,
    learner: dict,
) -> None:
    """Write the training state atomically (a crash leaves the previous checkpoint whole)."""
    run.save_torch(
        CHECKPOINT,
        {
            "step": step,
            "seconds": seconds,
            "networks": {n: net.state_dict() for n, net in networks.items()},
            "optimizers": {n: opt.state_dict() for n, opt in optimizers.items()},
            "schedulers": {n: sched.state_dict() for n, sched in schedulers.items()},
            "learner": learner,
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": _numpy_state(),
            "python_rng": random.getstate(),
        },
    )


def _numpy_state() -> dict:
    """numpy's global RNG state in types `torch.load(weights_only=True)` (its default) reads."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    keys = torch.from_numpy(keys.astype(np.int64))
    return {"kind": kind, "keys": keys, "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)}


def load_checkpoint(
    run: RunDir, networks: Stateful, optimizers: Stateful, schedulers: Stateful
) -> tuple[int, float, dict]:
    """Restore networks, optimisers, schedules and RNGs in place; the step, seconds and the learner's state."""
    state = run.load_torch(CHECKPOINT)
    for group, saved in ((networks, "networks"), (optimizers, "optimizers"), (schedulers, "schedulers")):
        for name, item in group.items():
            item.load_state_dict(state[saved][name])
    torch.set_rng_state(state["torch_rng"])
    saved = state["numpy_rng"]
    if isinstance(saved, dict):
        keys = saved["keys"].numpy().astype(np.uint32)
        np.random.set_state((saved["kind"], keys, saved["pos"], saved["has_gauss"], saved["cached"]))
    else:  # a checkpoint from before 2026-12-05 holds numpy's tuple
        np.random.set_state(saved)
    random.setstate(state["python_rng"])
    return state["step"], state["seconds"], state["learner"]


def export_network(run: RunDir, filename: str, network: nn.Module, arch: str, outputs: int) -> None:
    """One network's weights, architecture and output size, in a file `weights_only=True` can load."""
    state = {k: v.detach().cpu() for k, v in network.state_dict().items()}
    run.save_torch(filename, {"arch": arch, "outputs": outputs, "state_dict": state})


def load_exported(path: Path) -> nn.Module:
    """A network `export_network` wrote, built from its architecture and loaded, on the CPU, in eval mode."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    network = build_network(saved["arch"], saved["outputs"])
    network.load_state_dict(saved["state_dict"])
    return network.eval()


def pretrained_state(folder: Path, where: str) -> dict[str, torch.Tensor]:
    """The network weights a pretraining run saved; a file that cannot be read is one message naming it."""
    path = folder / PRETRAINED if (folder / PRETRAINED).is_file() else folder / CHECKPOINT
    try:
        if path.name == PRETRAINED:
            return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        # run folders made before the export: the network inside the full checkpoint
        return torch.load(path, map_location="cpu", weights_only=False)["networks"][NETWORK]
    except Exception as exc:  # noqa: BLE001 - empty, truncated, not a torch file: all one message
        raise UserError(
            f"{where}: {path} cannot be read as a pretrained network ({summary(exc)}); run the pretraining again"
        ) from None


def is_pretraining_run(folder: str | Path) -> bool:
    return (Path(folder) / PRETRAINED).is_file() or (Path(folder) / CHECKPOINT).is_file()


def load_pretrained(network: nn.Module, folder: str, where: str) -> None:
    """Start a network from a pretraining run's final weights (`networks.<name>.init`)."""
    state = pretrained_state(Path(folder), where)
    try:
        network.load_state_dict(state)
    except (KeyError, RuntimeError) as exc:
        raise UserError(
            f"{where}: {folder} does not hold a network of this architecture and size "
            f"({summary(exc)}); "
            "pretrain with the same arch and clusters = domain size"
        ) from None
