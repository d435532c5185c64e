"""A task ready to train, from its validated config: the checks that need the registries, then
program -> query template -> query sets -> networks (seeded, started from `init:` runs, clusters named)
-> method -> engine -> learner. `config.py` knows no registry; this module supplies the names it checks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from problog.logic import Constant, Term

from nesy_gedi.analysis.naming import Naming, apply_naming, name_clusters
from nesy_gedi.analysis.shortcut_count import CountLimits, ShortcutCount, count_shortcuts
from nesy_gedi.analysis.shortcuts import training_combinations
from nesy_gedi.args import check_args
from nesy_gedi.assembly.config import PretrainConfig, TaskConfig, Where, dump_config, load_config
from nesy_gedi.assembly.inputs import TaskImages, task_images
from nesy_gedi.data.mnist import cache_folder
from nesy_gedi.data.queries import QuerySet, build_query_set, ood_combinations
from nesy_gedi.data.query_files import read_query_file
from nesy_gedi.data.sources import SOURCES
from nesy_gedi.errors import UserError
from nesy_gedi.logic import make_engine
from nesy_gedi.logic.chain_engine import split_label
from nesy_gedi.logic.engine import Engine
from nesy_gedi.logic.limits import Limits
from nesy_gedi.logic.program import Program
from nesy_gedi.logic.query import QueryTemplate
from nesy_gedi.methods import METHODS, Method, MethodContext, make_method
from nesy_gedi.networks import ARCHITECTURES, build_network, head_of, known_architecture
from nesy_gedi.ssl.objectives import OBJECTIVES
from nesy_gedi.ssl.sgld import Domain
from nesy_gedi.training.checkpoint import is_pretraining_run, load_pretrained, pretrained_state
from nesy_gedi.training.learners import QueryLearner
from nesy_gedi.training.loop import seed_everything
from nesy_gedi.training.supervision import ConceptLabels, choose_concept_labels


def check_task(config: TaskConfig | PretrainConfig, where: Where) -> None:
    """Registry names must exist (saying which do), method arguments must validate, and an `init:` must be
    a pretraining run folder; every message names the key as the user wrote it."""
    program_task = isinstance(config, TaskConfig)
    known = METHODS if program_task else OBJECTIVES
    if config.method not in known:
        raise UserError(f"{where(('method',))}: unknown method '{config.method}'; known: {', '.join(sorted(known))}")
    check_args(config.method_args, config.method, known)
    networks = config.networks if program_task else {"network": config.network}
    archs = {
        (("networks", name, "arch") if program_task else ("network", "arch")): spec.arch
        for name, spec in networks.items()
    }
    if not program_task and config.eval.judge_arch is not None:
        archs[("eval", "judge_arch")] = config.eval.judge_arch
    for loc, arch in archs.items():
        if not known_architecture(arch):
            raise UserError(
                f"{where(loc)}: unknown architecture '{arch}'; known: {', '.join(sorted(ARCHITECTURES))}, "
                "or your own as `package.module:factory`"
            )
    kinds = {("data", "sources", n, "kind"): s.kind for n, s in config.data.sources.items()} if program_task else {}
    if not program_task and config.data.kind not in ("moons", "circles"):
        kinds[("data", "kind")] = config.data.kind
    if not program_task and config.eval.ood_source is not None:
        kinds[("eval", "ood_source")] = config.eval.ood_source
    for loc, kind in kinds.items():
        if kind not in SOURCES:
            known = ", ".join(sorted([*SOURCES, *([] if program_task or loc[0] == "eval" else ["circles", "moons"])]))
            raise UserError(f"{where(loc)}: unknown source kind '{kind}'; known: {known}")
    if not program_task:
        return
    _check_data(config, where)
    if config.engine.chain is not None:
        _check_chain(config, where)
    logic = task_logic(config)  # a program that cannot be read, parsed or asked fails here, before any run
    config._checked = (dump_config(config), logic)
    program = logic[0]
    _check_combinations(config, logic[1], logic[2], where)
    if config.engine.semiring == "log" and config.engine.kind != "compiled":
        raise UserError(
            f"{where(('engine', 'semiring'))}: the log semiring is the compiled engine's; set engine.kind: compiled"
        )
    if config.engine.semiring == "log" and (line := program.learned_disjunction()) is not None:
        raise UserError(
            f"{where(('engine', 'semiring'))}: the log semiring is not exact for {program.path}:{line}, an annotated "
            "disjunction with learnable t(_) probabilities (its 'none' weight 1 - sum t can be exactly 0); use "
            "engine.semiring: real"
        )
    for name, spec in config.networks.items():
        if config.train.batch_size == 1 and len(logic[1].readers.get(name, [])) == 1 and _normalises(spec.arch):
            raise UserError(
                f"{where(('train', 'batch_size'))}: one query a step gives network '{name}' ({spec.arch}, batch-"
                "normalised) a single image in training, which batch normalisation cannot use; set "
                "train.batch_size: 2 or more"
            )
        if METHODS[config.method].needs_pretrained and spec.init is None and spec.pretrain is None:
            raise UserError(
                f"{where(('networks', name))}: method '{config.method}' starts every network from a pretraining "
                f"run; set networks.{name}.pretrain (pretrain it first) or .init (a `nesy-gedi pretrain` run folder)"
            )
        if spec.init is not None and spec.pretrain is not None:
            raise UserError(f"{where(('networks', name, 'pretrain'))}: give `pretrain` or `init`, not both")
        if spec.naming_labels and not (spec.naming and (spec.init or spec.pretrain)):
            raise UserError(
                f"{where(('networks', name, 'naming_labels'))}: labels only choose how pretrained clusters are "
                "named; give the network `init` or `pretrain` and keep `naming: true`, or set naming_labels: 0"
            )
        if spec.pretrain is not None:  # the pretraining task must load, with its objective and `set`
            try:
                load_task(spec.pretrain.task, spec.pretrain.overrides(), PretrainConfig)
            except UserError as error:
                raise UserError(
                    f"{where(('networks', name, 'pretrain'))}: {spec.pretrain.task} does not load with this "
                    f"`method` and `set` (a `--set` below is a key of `set`): {error}"
                ) from None
        if spec.init is not None and not is_pretraining_run(spec.init):
            raise UserError(
                f"{where(('networks', name, 'init'))}: {spec.init} is not a `nesy-gedi pretrain` run folder with "
                "a network.pt or checkpoint.pt; run the pretraining first"
            )
        if spec.init is not None:  # read now, before any run folder exists
            pretrained_state(Path(spec.init), where(("networks", name, "init")))


def _check_combinations(config: TaskConfig, template: QueryTemplate, sizes: dict[str, int], where: Where) -> None:
    """Each listed tuple has one concept index per image of a query, inside the domain of every network that
    reads that image."""
    images = len(template.images)
    for k, combination in enumerate(config.data.combinations or []):
        if len(combination) != images:
            raise UserError(
                f"{where(('data', 'combinations', k))}: {list(combination)} has {len(combination)} concepts; a "
                f"query has {images} images, one concept index each"
            )
        for net, read in template.readers.items():
            domain = next(p.domain for p in template.program.neural_predicates if p.network == net)
            for p in read:
                if not 0 <= combination[p] < sizes[net]:
                    raise UserError(
                        f"{where(('data', 'combinations', k))}: {list(combination)} gives image {p + 1} the concept "
                        f"index {combination[p]}, outside the domain of {net}: indices 0..{sizes[net] - 1} for "
                        f"[{', '.join(map(str, domain))}]"
                    )


def _normalises(arch: str) -> bool:
    """Whether an architecture has batch normalisation (a user network that cannot be built here is not
    checked: it fails with its own message when the run builds it)."""
    try:
        network = build_network(arch, 2)
    except Exception:  # noqa: BLE001 - any failure of user code is reported where the run builds it
        return False
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in network.modules())


def _check_chain(config: TaskConfig, where: Where) -> None:
    """A chain needs the compiled engine and a labelled query over lists of one length (its predicates are
    checked where the template is made, `_chain_step`)."""
    forms = {name: spec if isinstance(spec, (str, int)) else spec.images for name, spec in config.query.inputs.items()}
    if config.engine.kind != "compiled":
        raise UserError(f"{where(('engine', 'chain'))}: a chain is the compiled engine's; set engine.kind: compiled")
    if config.query.output is None or "image" in forms.values() or len(set(forms.values())) != 1:
        raise UserError(
            f"{where(('engine', 'chain'))}: a chain needs a query with an output whose inputs are all lists of one "
            f"length N (query.inputs: {forms})"
        )


def _check_data(config: TaskConfig, where: Where) -> None:
    """Every input's source must be one of `data.sources`, every source must be read by an input (a source
    left unread is an input that forgot its `source`), and where labels come from must fit the other data
    keys."""
    data = config.data
    for name, spec in config.query.inputs.items():
        source = getattr(spec, "source", None)
        if source is not None and source not in data.sources:
            raise UserError(
                f"{where(('query', 'inputs', name, 'source'))}: source '{source}' is not in data.sources "
                f"({', '.join(data.sources)})"
            )
    first = next(iter(data.sources))
    read = {getattr(spec, "source", None) or first for spec in config.query.inputs.values()}
    for name in data.sources:
        if name not in read:
            raise UserError(
                f"{where(('data', 'sources', name))}: no query input reads source '{name}' (an input without "
                f"`source` reads the first, '{first}'); write `{{images: ..., source: {name}}}` in query.inputs for "
                "the input that should, or remove the source"
            )
    if data.labels == "files":
        if data.query_files is None:
            raise UserError(f"{where(('data', 'labels'))}: `files` needs data.query_files: {{train: ..., test: ...}}")
        for key in ("combinations", "balance"):
            if getattr(data, key):
                raise UserError(
                    f"{where(('data', key))}: the query files are the queries; data.{key} shapes program-generated "
                    "queries only: remove it"
                )
        for split in ("train", "test", "ood"):
            path = getattr(data.query_files, split)
            if path is not None and not Path(path).is_file():
                raise UserError(f"{where(('data', 'query_files', split))}: query file {path} not found")
    elif data.query_files is not None:
        raise UserError(f"{where(('data', 'query_files'))}: query files are read with data.labels: files")
    if data.balance and data.combinations:
        raise UserError(
            f"{where(('data', 'balance'))}: with data.combinations the listed tuples decide the labels; balance "
            "them in the list, or drop data.balance"
        )


def load_task(
    path: str | Path, overrides: dict[str, str] | None = None, kind: type[TaskConfig | PretrainConfig] | None = None
) -> Any:
    """A task file, validated and checked against the registries (`kind` None: whichever kind it is)."""
    return load_config(path, overrides, kind, check_task)


def domain_sizes(program: Program, config: TaskConfig) -> dict[str, int]:
    """Each network's output size is the domain of the neural predicates that use it."""
    sizes: dict[str, int] = {}
    for pred in program.neural_predicates:
        if sizes.setdefault(pred.network, len(pred.domain)) != len(pred.domain):
            raise UserError(f"{program.path}:{pred.line}: network '{pred.network}' is used with two domain sizes")
    for name in config.networks:
        if name not in sizes:
            raise UserError(f"networks.{name}: no nn/4 in {program.path} uses this network; remove it or use it")
    return sizes


def task_logic(config: TaskConfig) -> tuple[Program, QueryTemplate, dict[str, int]]:
    """The task's program (checked against its networks), query template and each network's domain size."""
    limits = Limits(config.limits.grounding_seconds, config.limits.compile_seconds)
    program = Program(config.program, config.seed, limits)
    program.check_networks(config.networks, where="the task")
    template = QueryTemplate(program, **config.query.model_dump(), step=_chain_step(config, program))
    return program, template, domain_sizes(program, config)


def _chain_term(key: str, text: str, arity: int | None, program: Program) -> Term:
    """`engine.chain.<key>` as a term; with an `arity`, a predicate the program must define."""
    try:
        term = Term.from_string(text)
    except Exception:  # ProbLog's parser raises several kinds
        raise UserError(f"engine.chain.{key}: '{text}' is not a ProbLog term, e.g. column(X, Y, C, D, C2)") from None
    if arity is not None and (term.arity != arity or not program.defines(term.functor, arity)):
        raise UserError(
            f"engine.chain.{key}: {program.path} must define {term.functor}/{arity} (one argument per list input, "
            f"then state, output, next state for the step; label, N, outputs, last state for the split); it "
            f"defines {program.defined()}"
        )
    return term


def _chain_step(config: TaskConfig, program: Program) -> Term | None:
    """A chain task's step goal with its state given (`engine.chain.start`); the step and split predicates
    checked against the program."""
    chain = config.engine.chain
    if chain is None:
        return None
    k = len(config.query.inputs)
    _chain_term("split", chain.split, 4, program)
    step = _chain_term("step", chain.step, k + 3, program)
    start = Constant(chain.start) if isinstance(chain.start, int) else _chain_term("start", chain.start, None, program)
    return step(*step.args[:k], start, *step.args[k + 1 :])


def sampler(template: QueryTemplate, seed: int, split: int) -> Callable[[Sequence[int]], Term]:
    """Labels drawn from the program's distribution over answers given the true concepts, in query order
    from one RNG per (seed, split): the data carries exactly the noise the program describes."""
    rng = np.random.default_rng([seed, split])

    def draw(concepts: Sequence[int]) -> Term:
        found = template.distribution(concepts)
        answers = sorted(found, key=str)
        weights = np.array([found[a] for a in answers])
        return answers[rng.choice(len(answers), p=weights / weights.sum())]

    return draw


def _from_files(config: TaskConfig, template: QueryTemplate, images: TaskImages) -> dict[str, QuerySet]:
    """The splits of `data.query_files`: training rows index the training images, the others the test images;
    `data.train_size` / `test_size` / `ood_size` take the first rows."""
    files, data = config.data.query_files, config.data
    labels = template.labels() if config.engine.chain is None else _chain_labels(template, config.engine.chain.split)
    sets = {}
    for split, path, part, size, key in (
        ("train", files.train, "train", data.train_size, "data.train_size"),
        ("id", files.test, "test", data.test_size, "data.test_size"),
        ("ood", files.ood, "test", data.ood_size, "data.ood_size"),
    ):
        if path is None:
            continue
        found = read_query_file(path, part, template.counts, images.positions[part], labels, template.boolean)
        if size is not None and size > len(found):
            raise UserError(f"{key}={size}, but {path} has only {len(found)} queries; lower {key}")
        sets[split] = found if size is None else found.take(slice(0, size))
    return sets


def _check_file_labels(config: TaskConfig, engine: Engine, sets: dict[str, QuerySet]) -> None:
    """Labels from query files that no world gives, refused before training, naming the file and query."""
    paths = config.data.query_files
    files = {"train": paths.train, "id": paths.test, "ood": paths.ood}
    for split, queries in sets.items():
        never = engine.impossible(queries.labels)
        if never:
            i, more = never[0], f", as are {len(never) - 1} more" if len(never) > 1 else ""
            raise UserError(
                f"{files[split]}: label {queries.labels[i]} of query {i + 1} is one no concepts give (the program "
                f"proves it with probability 0 in every world){more}; fix the file's labels"
            )


def _chain_labels(template: QueryTemplate, split: str) -> Callable[[Term], str | None]:
    """A chain task's label check: its answers are too many to list (10^15 sums at N = 15), so a label is one
    the program can give when the split predicate splits it into one output per step (why not, else)."""
    length = next(iter(template.counts.values()))
    split_term = Term.from_string(split)

    def wrong(label: Term) -> str | None:
        try:
            split_label(template.program, split_term, label, length)
        except UserError as exc:
            return f"is not a label the chain can give ({exc})"
        return None

    return wrong


def query_sets(config: TaskConfig, template: QueryTemplate, images: TaskImages) -> dict[str, QuerySet]:
    """Training queries, test queries ("id") and, for a task with `data.combinations`, the OOD queries
    (the other tuples over the same concepts, from the test images); or the splits of the query files.
    Labels come from the program's answer, from its distribution (`data.labels: sampled`), or the files."""
    data = config.data
    if data.labels == "sampled" and template.program.unset:
        raise UserError(
            f"data.labels: sampled draws labels from the program's own distribution, but "
            f"{template.program.path}:{min(template.program.unset)} has `t(_)` without an initial value (training "
            "starts it at a seeded random one); write e.g. `t(0.5)::...`, or give the labels in query files"
        )
    if data.labels == "files":
        return _from_files(config, template, images)
    if data.ood_size and not data.combinations:
        raise UserError("data.ood_size: an OOD split needs data.combinations (the in-distribution tuples)")
    seed, train, test = config.seed, images.positions["train"], images.positions["test"]

    def label(split: int) -> Callable[[Sequence[int]], Term]:
        return sampler(template, seed, split) if data.labels == "sampled" else template.label

    common = {"combinations": data.combinations, "balance": data.balance}
    sets = {
        "train": build_query_set(train, "train", data.train_size, seed, label(0), "data.train_size", **common),
        "id": build_query_set(test, "test", data.test_size, seed, label(1), "data.test_size", **common),
    }
    if data.ood_size:
        outside = ood_combinations(data.combinations)
        sets["ood"] = build_query_set(test, "test", data.ood_size, seed + 1, label(2), "data.ood_size", outside)
    return sets


def method_context(
    config: TaskConfig, train_set: QuerySet, images: TaskImages, tensors: dict[str, torch.Tensor], seed: int
) -> MethodContext:
    """Per network, the unlabelled pool (every training image it reads in the task's queries) and its input
    domain (the box [-1, 1] of image pixels); the task's view and sampler settings; one RNG seeded by `seed`."""
    pools, domains = {}, {}
    for network, read in images.readers.items():
        pools[network] = train_set.images(tensors, read, unique=True)
        low = torch.full(pools[network].shape[1:], -1.0, device=pools[network].device)
        domains[network] = Domain(low, -low)
    device = next(iter(pools.values())).device
    return MethodContext(pools, domains, config.augment, config.sgld, torch.Generator(device).manual_seed(seed))


@dataclass(frozen=True)
class TaskData:
    """What the task's seed fixes before any network exists: the program, the queries and their images."""

    program: Program
    template: QueryTemplate
    sizes: dict[str, int]
    """each network's domain size"""
    images: TaskImages
    train_set: QuerySet
    splits: dict[str, QuerySet]
    """the evaluation query sets: `id` (test queries) and, for a restricted task, `ood`"""
    tensors: dict[str, torch.Tensor]
    """every split of every source, by tensor source name (`<source>_<split>`)"""
    concept_labels: dict[str, ConceptLabels]
    """per network with `concept_labels`, its labelled training images"""


def load_data(config: TaskConfig, device: torch.device, cache: Path) -> TaskData:
    checked, config._checked = config._checked, None  # taken over once: a second run parses afresh
    fresh = checked is not None and checked[0] == dump_config(config)
    program, template, sizes = checked[1] if fresh else task_logic(config)
    images = task_images(config, template, sizes, cache)
    splits = query_sets(config, template, images)
    train_set = splits.pop("train")
    tensors = images.tensors(device)
    wanted = {name: (spec.concept_labels, spec.concept_weight) for name, spec in config.networks.items()}
    labelled = choose_concept_labels(train_set, tensors, images.readers, sizes, wanted, config.seed)
    return TaskData(program, template, sizes, images, train_set, splits, tensors, labelled)


@dataclass(frozen=True)
class Started:
    """Networks drawn from a seed or loaded from pretraining runs, the method around them, clusters named."""

    method: Method
    predicates: dict[str, torch.nn.Module]
    """what each neural predicate reads (the method's view of the networks)"""
    naming: Naming | None
    """how the pretrained clusters were named (`networks.<name>.naming`), if any network was"""


def named_networks(config: TaskConfig, starts: dict[str, Path]) -> list[str]:
    """The networks whose clusters are named: started from a pretraining run, with `naming: true`."""
    return [name for name, spec in config.networks.items() if name in starts and spec.naming]


def start_networks(
    config: TaskConfig,
    data: TaskData,
    device: torch.device,
    starts: dict[str, Path],
    seed: int,
    naming: Naming | None = None,
) -> Started:
    """Networks initialised from `seed` (networks in `starts` loaded from those pretraining runs), the
    method with its RNG seeded by `seed`, and the pretrained clusters named (with the run's own seed), or
    named by `naming`, found earlier for the same starts."""
    seed_everything(seed)
    networks = {}
    for name, spec in config.networks.items():
        shape = data.images.data[data.images.source_of[name]].shape
        networks[name] = build_network(spec.arch, data.sizes[name], shape, name)
        if name in starts:
            load_pretrained(networks[name], str(starts[name]), f"networks.{name}.init")
        networks[name].to(device)
    context = method_context(config, data.train_set, data.images, data.tensors, seed)
    method = make_method(config.method, config.method_args, networks, context)
    predicates = method.predicate_networks()
    heads = {name: head_of(networks[name], name) for name in named_networks(config, starts)}
    if naming is not None:
        apply_naming(naming, heads)
        return Started(method, predicates, naming)
    naming = (
        name_clusters(
            predicates,
            heads,
            data.sizes,
            data.template,
            data.train_set,
            config.data.combinations,
            data.tensors,
            config.seed,
            {name: config.networks[name].naming_labels for name in heads},
            sampled=config.data.labels == "sampled",
        )
        if heads
        else None
    )
    return Started(method, predicates, naming)


@dataclass(frozen=True)
class Assembled:
    """A program task ready to train: its queries, images, networks, method, engine and learner."""

    program: Program
    template: QueryTemplate
    images: TaskImages
    train_set: QuerySet
    splits: dict[str, QuerySet]
    """the evaluation query sets: `id` (test queries) and, for a restricted task, `ood`"""
    tensors: dict[str, torch.Tensor]
    """every split of every source, by tensor source name (`<source>_<split>`)"""
    method: Method
    predicates: dict[str, torch.nn.Module]
    """what each neural predicate reads (the method's view of the networks)"""
    engine: Engine
    learner: QueryLearner
    naming: Naming | None
    """how the pretrained clusters were named (`networks.<name>.naming`), if any network was"""


def with_engine(config: TaskConfig, data: TaskData, started: Started, cache: Path) -> Assembled:
    """The engine over the started networks, and the learner that trains them."""
    engine = make_engine(
        config.engine, data.program, started.predicates, data.tensors, data.template, cache / "circuits"
    )
    if config.data.labels == "files":
        _check_file_labels(config, engine, {"train": data.train_set, **data.splits})
    learner = QueryLearner(
        engine,
        started.method,
        data.template,
        data.train_set,
        data.tensors,
        data.images.readers,
        config.train.param_lr,
        data.concept_labels,
        config.seed,
    )
    return Assembled(
        data.program,
        data.template,
        data.images,
        data.train_set,
        data.splits,
        data.tensors,
        started.method,
        started.predicates,
        engine,
        learner,
        started.naming,
    )


def init_starts(config: TaskConfig) -> dict[str, Path]:
    """The networks started from the `init:` runs the task names."""
    return {name: Path(spec.init) for name, spec in config.networks.items() if spec.init}


def assemble(config: TaskConfig, device: torch.device, cache: Path, starts: dict[str, Path] | None = None) -> Assembled:
    """Images, program, queries, networks (seeded by the task; started from `init:` runs or the pretraining
    runs in `starts`), method and engine of a task."""
    data = load_data(config, device, cache)
    started = start_networks(config, data, device, init_starts(config) | (starts or {}), config.seed)
    return with_engine(config, data, started, cache)


def build_queries(config: TaskConfig) -> tuple[QueryTemplate, TaskImages, dict[str, QuerySet]]:
    """A task's query template, images and query sets (`train`, `id`, and `ood` where there is one)."""
    _, template, sizes = task_logic(config)
    images = task_images(config, template, sizes, cache_folder(config.data.cache))
    return template, images, query_sets(config, template, images)


def task_shortcuts(config: TaskConfig) -> tuple[list[tuple], ShortcutCount]:
    """The task's training combinations of true concepts and its deterministic shortcuts, counted exactly
    by knowledge compilation (`shortcut_count.py`). A task whose queries come from files takes its
    combinations from the training file's images (so loads its sources)."""
    _, template, sizes = task_logic(config)
    if config.data.labels == "files":
        images = task_images(config, template, sizes, cache_folder(config.data.cache))
        train = _from_files(config, template, images)["train"]
        combinations = sorted({tuple(row) for row in train.concepts.tolist()})
    else:
        combinations = training_combinations(template, sizes, config.data.combinations)
    limits = CountLimits(config.limits.shortcut_pairs, config.limits.shortcut_seconds)
    return combinations, count_shortcuts(template, sizes, combinations, limits)
