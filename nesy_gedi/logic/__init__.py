"""Programs, query templates and inference engines."""

import warnings

# DeepProbLog warns on import that its optional approximate engine (SWI-Prolog) is missing; we never use it.
# It is imported here once with that warning silenced, leaving the caller's warning filters as they were.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="ApproximateEngine is not available")
    import deepproblog.engines  # noqa: F401


def make_engine(
    name: str,
    program,
    networks: dict,
    sources: dict,
    cache_dir=None,
    circuits: str = "answers",
    semiring: str = "real",
    chain=None,
    template=None,
):
    """The engine a task names: `compiled` (KLay circuits, training on the `circuits` it names, in the
    `semiring` it names; with a `chain`, composed step by step over the `template`'s lists) or `deepproblog`
    (its ExactEngine)."""
    from nesy_gedi.logic.chain_engine import ChainEngine
    from nesy_gedi.logic.compiled_engine import CompiledEngine
    from nesy_gedi.logic.deepproblog_engine import DeepProbLogEngine

    if name == "compiled" and chain is not None:
        return ChainEngine(program, networks, sources, template, chain.split, chain.order, cache_dir, semiring)
    if name == "compiled":
        return CompiledEngine(program, networks, sources, cache_dir, circuits, semiring, template)
    return DeepProbLogEngine(program, networks, sources, template)
