"""Programs, query templates and inference engines."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

# DeepProbLog warns on import that its optional approximate engine (SWI-Prolog) is missing; we never use it.
# It is imported here once with that warning silenced, leaving the caller's warning filters as they were.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="ApproximateEngine is not available")
    import deepproblog.engines  # noqa: F401

if TYPE_CHECKING:
    import torch
    from torch import nn

    from nesy_gedi.logic.engine import Engine
    from nesy_gedi.logic.program import Program
    from nesy_gedi.logic.query import QueryTemplate


class ChainSettings(Protocol):
    split: str
    order: str


class EngineSettings(Protocol):
    """The task's `engine:` section (`EngineSpec`), as the engines read it."""

    kind: str
    circuits: str
    semiring: str
    chain: ChainSettings | None


def make_engine(
    settings: EngineSettings,
    program: Program,
    networks: dict[str, nn.Module],
    sources: dict[str, torch.Tensor],
    template: QueryTemplate,
    cache_dir: Path | None = None,
) -> Engine:
    """The engine the task's `engine:` section names: `compiled` (KLay circuits, training on the `circuits`
    it names, in the `semiring` it names; with a `chain`, composed step by step over the template's lists)
    or `deepproblog` (its ExactEngine). Circuits are cached on disk in `cache_dir`."""
    from nesy_gedi.logic.chain_engine import ChainEngine
    from nesy_gedi.logic.compiled_engine import CompiledEngine
    from nesy_gedi.logic.deepproblog_engine import DeepProbLogEngine

    if settings.kind == "deepproblog":
        return DeepProbLogEngine(program, networks, sources, template)
    if settings.chain is not None:
        return ChainEngine(
            program,
            networks,
            sources,
            template,
            split=settings.chain.split,
            order=settings.chain.order,
            cache_dir=cache_dir,
            semiring=settings.semiring,
        )
    return CompiledEngine(
        program,
        networks,
        sources,
        template,
        cache_dir=cache_dir,
        circuits=settings.circuits,
        semiring=settings.semiring,
    )
