"""nesy_gedi: neuro-symbolic learning whose symbols are grounded correctly (DeepProbLog + GEDI).

The Python API: `load_task`, `resume`, `Task` (nesy_gedi.api) and `ProgramModule` (a program as a torch
module, nesy_gedi.logic.module). They are imported on first use, so `import nesy_gedi` stays light.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["ProgramModule", "Task", "load_task", "resume"]


def __getattr__(name: str) -> Any:
    if name in ("load_task", "resume", "Task"):
        from nesy_gedi import api

        return getattr(api, name)
    if name == "ProgramModule":
        from nesy_gedi.logic.module import ProgramModule

        return ProgramModule
    raise AttributeError(f"module 'nesy_gedi' has no attribute {name!r}")
