"""Programs, query templates and inference engines."""

import warnings

# DeepProbLog warns on import that its optional approximate engine (SWI-Prolog) is missing; we never use it.
warnings.filterwarnings("ignore", message="ApproximateEngine is not available")


def make_engine(
    name: str,
    program,
    networks: dict,
    sources: dict,
    param_lr: float,
    cache_dir=None,
    circuits: str = "answers",
    semiring: str = "real",
):
    """The engine a task names: `compiled` (KLay circuits, training on the `circuits` it names, in the
    `semiring` it names) or `deepproblog` (its ExactEngine)."""
    from nesy_gedi.logic.compiled_engine import CompiledEngine
    from nesy_gedi.logic.deepproblog_engine import DeepProbLogEngine

    if name == "compiled":
        return CompiledEngine(program, networks, sources, param_lr, cache_dir, circuits, semiring)
    return DeepProbLogEngine(program, networks, sources, param_lr)
