"""Task YAML to validated settings.

Every mistake is reported against what the user wrote: the YAML file and line with the dotted key, or
the `--set` option that introduced it. Relative paths in a task are relative to its YAML file.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    PrivateAttr,
    ValidationError,
)

from nesy_gedi.errors import UserError, describe
from nesy_gedi.ssl.augment import AugmentSpec
from nesy_gedi.ssl.sgld import SGLDSpec


class _Strict(BaseModel):
    """No unknown keys and no silent coercion ("3" is not 3)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class InputSpec(_Strict):
    source: str = Field(description="the name of the source (`data.sources`) this input's images come from")
    images: Literal["image"] | PositiveInt = Field("image", description="`image` (one image) or N (a list of N)")


class QuerySpec(_Strict):
    term: str = Field(
        description="the supervised query, one variable per input and one for the label, e.g. `addition(A, B, Sum)`"
    )
    output: str | None = Field(
        None,
        description="the variable of `term` that holds the label; none: a true/false query (labels `true`, `false`)",
    )
    inputs: dict[str, Literal["image"] | PositiveInt | InputSpec] = Field(
        description="per input variable: `image` (one image), N (a list of N images, e.g. an N-digit number), or "
        "`{source: NAME, images: image | N}` to read another source than the first of `data.sources`"
    )


class PretrainSpec(_Strict):
    task: str = Field(description="the pretraining task file (a `nesy-gedi pretrain` YAML), relative to this one")
    method: str | None = Field(
        None, description="its objective (`gedi`, `gedi-nogen`, `swav`, ...); default: the task's"
    )
    set: dict[str, Any] = Field(
        default_factory=dict,
        description="overrides of the pretraining task, dotted keys, e.g. `train.iterations: 1000`",
    )

    attempts: PositiveInt = Field(
        3,
        description="pretrainings tried at most (the run's seed, then seeds derived from it) while the naming of "
        "their clusters falls below the networks' `naming_threshold`; the one whose naming explains most is kept",
    )

    def overrides(self) -> dict[str, str]:
        """What this spec changes in its pretraining task (its `set`, then its objective), as `--set` texts:
        the task check and the pipeline load the same pretraining."""
        sets = {key: yaml_text(value) for key, value in self.set.items()}
        if self.method:
            sets["method"] = self.method
        return sets


class ChainSpec(_Strict):
    step: str = Field(
        description="the program's predicate for one step: one element of each list input (in `query.inputs` "
        "order), the state before, the step's output, the state after; e.g. `column(X, Y, Carry, Digit, Next)`"
    )
    split: str = Field(
        description="the program's predicate splitting a label into the steps' outputs: with the label and N "
        "bound it gives the N outputs in step order and the state after the last step; e.g. "
        "`digits(Sum, N, Digits, Carry)`"
    )
    start: int | str = Field(0, description="the state before the first step")
    order: Literal["first", "last"] = Field(
        "last", description="`last`: the first step reads the lists' last elements (least significant digit first)"
    )


class EngineSpec(_Strict):
    kind: Literal["compiled", "deepproblog"] = Field(
        "compiled",
        description="`compiled`: one circuit per query shape, evaluated in batches; `deepproblog`: its ExactEngine",
    )
    circuits: Literal["answers", "labels"] = Field(
        "answers",
        description="compiled engine's training circuits: one all-answers circuit per query shape, or one per label "
        "(for programs whose all-answers circuit is too large)",
    )
    semiring: Literal["real", "log"] = Field(
        "real",
        description="compiled engine's arithmetic: `real` (DeepProbLog's) or `log` (log-probabilities: no underflow "
        "of tiny probabilities; refused for a program with a t(_) annotated disjunction)",
    )
    chain: ChainSpec | None = Field(
        None,
        description="compiled engine: the query is a chain of steps over list inputs (digit-by-digit N-digit "
        "addition); each step's circuit is compiled once and the steps composed exactly (docs/tasks.md)",
    )


class LimitsSpec(_Strict):
    grounding_seconds: PositiveFloat = Field(
        30.0,
        description="CPU seconds one grounding of the program may take (a query's label, the images a query's networks "
        "read, a circuit's ground program); a program that recurses without end stops here",
    )
    compile_seconds: PositiveFloat = Field(
        30.0,
        description="CPU seconds one compilation of a ground program to an SDD may take (checked between two of its "
        "applies); a query too large to compile exactly stops here",
    )
    shortcut_pairs: PositiveInt = Field(
        5_000_000,
        description="`nesy-gedi shortcuts`: (training combination, predicted concepts) pairs it may check; a larger "
        "task is refused at once with its size",
    )
    shortcut_seconds: PositiveFloat = Field(
        600.0, description="`nesy-gedi shortcuts`: seconds it may count; past them it stops and says how far it got"
    )


RENAMED = {"engine_circuits": "engine.circuits", "engine_chain": "engine.chain", "engine_semiring": "engine.semiring"}
"""keys of the task that moved into the `engine:` section"""


class NetworkSpec(_Strict):
    arch: str = Field(description="architecture from the network registry (docs/methods.md), e.g. `mnist_lenet`")
    init: str | None = Field(None, description="a `nesy-gedi pretrain` run folder: start this network from its weights")
    pretrain: PretrainSpec | None = Field(
        None,
        description="pretrain this network first, with the run's seed, cached by content (docs/methods.md); "
        "instead of `init`",
    )
    naming: bool = Field(
        True,
        description="with `init`: permute the pretrained clusters so the program answers the most training queries",
    )
    naming_labels: NonNegativeInt = Field(
        0,
        description="k labelled training images per domain value, used only to choose among the namings the "
        "program cannot tell apart (within 1 % of the best); 0: no labels. A run grounded so is classed "
        "`grounded with labels`",
    )
    concept_labels: NonNegativeInt = Field(
        0,
        description="k labelled training images per domain value (drawn with the run's seed, never from the test "
        "split, recorded in `queries.npz`) whose true concepts train the network by cross-entropy beside the "
        "method's loss; 0: none. A run grounded so is classed `grounded with labels`",
    )
    concept_weight: NonNegativeFloat = Field(
        1.0, description="weight of the `concept_labels` cross-entropy (a few of the labelled images per step)"
    )
    naming_threshold: float = Field(
        0.9,
        ge=0,
        le=1,
        description="named clusters are trusted when (explained / ceiling)^(1/k) reaches this: explained, the "
        "training queries the program answers under the naming; ceiling, the share labels allow; k, the images "
        "a query gives the named networks (docs/methods.md). Below it the pipeline pretrains again (`pretrain."
        "attempts`) and a run that stays below says so",
    )
    classes: list[str] | None = Field(
        None,
        min_length=1,
        description="the source class each domain value stands for, by name (value i is `classes[i]`); "
        "default: value i is class i",
    )


class SourceSpec(_Strict):
    kind: str = Field(
        description="`mnist`, `fashion_mnist`, `kmnist`, `emnist_letters`, `cifar10`, `svhn`, `npz` or `folder`"
    )
    path: str | None = Field(
        None,
        description="where the files are: a folder (MNIST's IDX files, Fashion-MNIST's, torchvision's layout), "
        "the .npz file, or the image folder; default: the kind's own places (docs/data.md)",
    )
    download: bool = Field(False, description="download-only sets: let torchvision download into `path`")


def _mnist_only() -> dict[str, SourceSpec]:
    return {"mnist": SourceSpec(kind="mnist")}


class QueryFiles(_Strict):
    train: str = Field(
        description="with `labels: files`: the training queries, a CSV or JSONL file (docs/tasks.md#query-files)"
    )
    test: str = Field(description="with `labels: files`: the test queries")
    ood: str | None = Field(None, description="with `labels: files`: out-of-distribution queries (optional)")


class DataSpec(_Strict):
    sources: dict[str, SourceSpec] = Field(
        default_factory=_mnist_only,
        min_length=1,
        description="image sources by a name of your choice; inputs read the first unless they name another",
    )
    cache: str | None = Field(
        None, description="download and circuit cache (else `NESY_GEDI_CACHE`, else `~/.cache/nesy_gedi`)"
    )
    train_size: PositiveInt | None = Field(None, description="training queries (default: all the images allow)")
    test_size: PositiveInt | None = Field(None, description="test queries (default: all the images allow)")
    combinations: list[list[NonNegativeInt]] | None = Field(
        None,
        min_length=1,
        description="allowed tuples of true concepts, one index per image of a query, e.g. `[[0, 6], [6, 0]]`: "
        "queries are spread evenly over them (sizes then required)",
    )
    ood_size: PositiveInt | None = Field(
        None, description="queries of an OOD split: every other tuple over the same concepts (needs `combinations`)"
    )
    labels: Literal["program", "sampled", "files"] = Field(
        "program",
        description="where labels come from: `program`, its one answer on the true concepts; `sampled`, drawn "
        "(seeded) from its distribution over answers, for programs with probabilistic facts; `files`, the "
        "queries and labels of `query_files`",
    )
    query_files: QueryFiles | None = Field(None, description="with `labels: files`")
    balance: bool = Field(
        False, description="program-generated queries: as many queries of every label (e.g. true/false tasks)"
    )


class TrainSpec(_Strict):
    optimizer: Literal["adam", "sgd"] = Field("adam", description="optimiser of the networks")
    lr: PositiveFloat = Field(1e-3, description="the networks' learning rate")
    schedule: Literal["constant", "cosine"] = Field(
        "constant", description="`cosine`: the learning rate decays to 0 over the run"
    )
    param_lr: PositiveFloat = Field(
        0.1,
        description="learning rate of the program's learnable `t(_)` probabilities (their logits, with the run's "
        "optimiser and schedule)",
    )
    batch_size: PositiveInt = Field(2, description="examples (queries, or inputs when pretraining) per step")
    epochs: PositiveInt = Field(1, description="passes over the training examples")
    iterations: PositiveInt | None = Field(None, description="optimiser steps; overrides `epochs` when given")
    checkpoint_every: PositiveInt = Field(1000, description="steps between checkpoints")
    threads: PositiveInt | None = Field(
        None,
        description="torch CPU threads; unset: chosen while training, the cores other processes leave free, "
        "one when a second thread does not make a step faster (docs/commands.md)",
    )
    restarts: PositiveInt = Field(
        1,
        description="starts (initialisation, batch order and sampling drawn from seeds derived from the run's) "
        "tried for `restart_steps` steps each; the one with the lowest training loss is trained to the end",
    )
    restart_steps: PositiveInt = Field(500, description="steps each start gets before the choice")


class PretrainTrainSpec(TrainSpec):
    batch_size: PositiveInt = Field(256, description="inputs per step")


class EvalSpec(_Strict):
    batch_size: PositiveInt = Field(64, description="test queries solved per engine call")
    grounded_at: float = Field(
        0.9, ge=0, le=1, description="a run is *grounded* when the Acc(C) of every network reaches this"
    )
    task_at: float = Field(
        0.9,
        ge=0,
        le=1,
        description="else a *shortcut* when its Acc(Y) reaches this, else *failed*",
    )


class _RunSpec(_Strict):
    """What every task file has: a name, the seed, the device and a method with its arguments."""

    name: str = Field(description="task name, used for the default run folder")
    seed: int = Field(
        0, ge=0, le=2**32 - 1, description="fixes the data, initialisation, batch order and sampling (also `--seed N`)"
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="`auto`: a GPU if torch sees one")
    method: str
    method_args: dict[str, Any] = Field(
        default_factory=dict,
        description="the method's arguments, or one section per method name (docs/methods.md)",
    )


class TaskConfig(_RunSpec):
    """A program task (`nesy-gedi run`)."""

    program: str = Field(description="the DeepProbLog program (`.pl`), relative to the task file")
    query: QuerySpec
    networks: dict[str, NetworkSpec] = Field(description="one entry per network named in an `nn/4` of the program")
    method: str = Field("dpl", description="training method (docs/methods.md); `dpl` = the query loss only")
    engine: EngineSpec = Field(default_factory=EngineSpec, description="how the program is evaluated")
    data: DataSpec = Field(default_factory=DataSpec)
    augment: AugmentSpec = Field(default_factory=AugmentSpec, description="views of self-supervised methods")
    sgld: SGLDSpec = Field(default_factory=SGLDSpec, description="negatives of generative methods")
    train: TrainSpec = Field(default_factory=TrainSpec)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    limits: LimitsSpec = Field(default_factory=LimitsSpec, description="bounds on grounding and shortcut counting")
    _checked: tuple[str, Any] | None = PrivateAttr(None)
    """the program and template the task check parsed, with the resolved config they were parsed for; the
    run that loads this config takes them over, so a run parses its program once"""

    def __eq__(self, other: object) -> bool:  # the settings, not what a check has parsed of them
        return isinstance(other, TaskConfig) and self.model_dump() == other.model_dump()


class PretrainData(_Strict):
    kind: str = Field(description="an image source's kind (as in `data.sources`), or 2-D points: `moons`, `circles`")
    path: str | None = Field(None, description="images: where the source's files are (as in `data.sources`)")
    download: bool = Field(False, description="download-only sets: let torchvision download into `path`")
    cache: str | None = Field(None, description="download cache (else `NESY_GEDI_CACHE`, else `~/.cache/nesy_gedi`)")
    train_size: PositiveInt | None = Field(None, description="training inputs (`mnist`: 60,000; points: 2,000)")
    test_size: PositiveInt | None = Field(None, description="held-out inputs (`mnist`: 10,000; points: 1,000)")
    noise: float | None = Field(None, ge=0, description="points: generator noise (moons 0.1, circles 0.05)")
    classes: list[NonNegativeInt] | None = Field(
        None, min_length=1, description="images: only these class indices (a task's pool, e.g. MNIST-Half's 0-4)"
    )


class PretrainNetwork(_Strict):
    arch: str = Field(description="architecture from the network registry (`mnist_lenet_bn`, `mlp_2d`, ...)")
    clusters: PositiveInt = Field(description="number of clusters = network outputs")


class PretrainEval(_Strict):
    batch_size: PositiveInt = Field(1000, description="inputs per forward pass in evaluation")
    ood: bool = Field(True, description="images: energy-score AUROC against `ood_source` and uniform noise")
    ood_source: str | None = Field(
        None,
        description="the out-of-distribution source's kind; default: `fashion_mnist` for `mnist`, `mnist` for "
        "`fashion_mnist`, none (noise only) otherwise",
    )
    samples: bool = Field(
        True, description="images, generative objectives: judge the sampler's buffer with a supervised classifier"
    )
    judge_arch: str | None = Field(
        None, description="the judge's architecture; default: `mnist_lenet` for 1x28x28, `small_cnn` for colour"
    )
    sample_confidence: float = Field(
        0.9, gt=0, le=1, description="a sample counts as recognised when the judge's top probability reaches this"
    )


class PretrainConfig(_RunSpec):
    """A self-supervised pretraining task (`nesy-gedi pretrain`): no program, unlabelled inputs."""

    data: PretrainData
    network: PretrainNetwork
    method: str = Field("gedi", description="self-supervised objective (docs/methods.md)")
    augment: AugmentSpec = Field(default_factory=AugmentSpec, description="views of the invariance term")
    sgld: SGLDSpec = Field(default_factory=SGLDSpec, description="negatives of the generative term")
    train: PretrainTrainSpec = Field(default_factory=PretrainTrainSpec)
    eval: PretrainEval = Field(default_factory=PretrainEval)


Where = Callable[[tuple], str]
"""names a dotted key as the user wrote it: `task.yaml:12: key 'method'`, or the `--set` option"""
Check = Callable[[Any, Where], None]
"""a caller's check of a loaded task (registry names, run folders), raising `UserError` named by `Where`"""


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-3` as a float (YAML 1.1 wants `1.0e-3`, which surprises everyone) and
    refuses a key given twice in one mapping (YAML would keep the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key, line = key_node.value, key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key '{key}' is given twice, at lines {seen[key]} and {line}; keep one",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?$|^[-+]?\d+[eE][-+]?\d+$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"
    ),
    list("-+0123456789."),
)
# An integer like `3` must stay an int: resolvers are tried in order, so put int's back in front.
for _first in "-+0123456789":
    _Loader.yaml_implicit_resolvers[_first] = sorted(
        _Loader.yaml_implicit_resolvers[_first], key=lambda r: r[0] != "tag:yaml.org,2002:int"
    )


def parse_value(text: str, key: str = "KEY") -> Any:
    """A `--set` value, typed the way YAML would type it."""
    try:
        return yaml.load(text, Loader=_Loader) if text.strip() else ""
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(
            f"--set {key}={text}: the value is not valid YAML ({problem}); quote it, e.g. --set '{key}=[1, 2]'"
        ) from None


def yaml_text(value: Any) -> str:
    """A value as the `--set` text `parse_value` reads back to it."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _unshared(value: Any) -> Any:
    """A copy in which no two keys share one object: a YAML alias (`gedi-nogen: *gedi`) becomes a copy, so
    that `--set method_args.gedi.weight=2` changes the `gedi` section alone."""
    if isinstance(value, dict):
        return {k: _unshared(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unshared(v) for v in value]
    return value


def _key_lines(node: yaml.Node, prefix: tuple = ()) -> dict[tuple, int]:
    """Line (1-based) of every dotted key in a composed YAML tree."""
    lines: dict[tuple, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*prefix, key.value)
            lines[path] = key.start_mark.line + 1
            lines.update(_key_lines(value, path))
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            lines[(*prefix, i)] = value.start_mark.line + 1
            lines.update(_key_lines(value, (*prefix, i)))
    return lines


def _set_dotted(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(data.get(part), dict):
            data[part] = {}
        data = data[part]
    data[parts[-1]] = value


def _where(loc: tuple, path: Path, lines: dict[tuple, int], overrides: dict[str, str]) -> str:
    dotted = ".".join(str(p) for p in loc)
    for key in overrides:
        if dotted == key or dotted.startswith(key + "."):
            return f"--set {key}={overrides[key]}"
    for n in range(len(loc), 0, -1):
        if loc[:n] in lines:
            return f"{path}:{lines[loc[:n]]}: key '{dotted}'"
    return f"{path}: key '{dotted}'"


def _refuse_old_engine_keys(data: dict, where: Callable[[str], str]) -> None:
    """The four flat `engine*` keys are one `engine:` section now: say how to write them."""
    if isinstance(data.get("engine"), str):
        kind = data["engine"]
        raise UserError(f"{where('engine')}: `engine: {kind}` is now written `engine: {{kind: {kind}}}`")
    for old, new in RENAMED.items():
        if old in data:
            raise UserError(
                f"{where(old)}: `{old}` is now `{new}`, in the task's one `engine:` section, e.g. "
                f"`engine: {{kind: compiled, {new.split('.')[1]}: ...}}`"
            )


SHIPPED = [
    Path(__file__).resolve().parents[2] / "tasks",  # a source checkout (or an editable install)
    Path(sys.prefix) / "share" / "nesy_gedi" / "tasks",  # the wheel's copy
]
"""where the tasks that come with the toolkit are: `nesy-gedi run mnist_add` names one"""


def shipped_task(name: str) -> Path | None:
    """A shipped task by its name (`mnist_add` or `mnist_add.yaml`), or None."""
    if "/" in name or "\\" in name:
        return None
    file = name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"
    return next((folder / file for folder in SHIPPED if (folder / file).is_file()), None)


def shipped_tasks() -> list[str]:
    return sorted({p.stem for folder in SHIPPED if folder.is_dir() for p in folder.glob("*.yaml")})


def load_config(
    path: str | Path,
    overrides: dict[str, str] | None = None,
    kind: type[TaskConfig | PretrainConfig] | None = None,
    check: Check | None = None,
) -> Any:
    """Read, override and validate a task: `TaskConfig`, `PretrainConfig`, or (kind None) whichever the file
    is (a `program:` makes it a program task). Relative paths become absolute against the YAML's folder;
    then `check` (the caller's: this module knows no registry) sees the config and how to name its keys."""
    path = Path(path)
    overrides = overrides or {}
    if not path.is_file():
        shipped = shipped_task(str(path))
        if shipped is None:
            raise UserError(
                f"{path}: task file not found (nor a shipped task of that name: {', '.join(shipped_tasks())})"
            )
        path = shipped
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as exc:
        raise UserError(f"{path}: cannot read the task file as UTF-8 text ({type(exc).__name__})") from None
    try:
        lines = _key_lines(yaml.compose(text, Loader=_Loader))
        data = _unshared(yaml.load(text, Loader=_Loader) or {})
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UserError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a task must be a YAML mapping of keys to values")
    if kind is None:
        kind = TaskConfig if "program" in data else PretrainConfig
    if kind is TaskConfig and "program" not in data and "network" in data:
        raise UserError(f"{path}: a pretraining task (a network:, no program:); run it with nesy-gedi pretrain")
    if kind is PretrainConfig and "program" in data:
        raise UserError(f"{path}: a program task (it has a program:); run it with nesy-gedi run")
    for key, value in overrides.items():
        _set_dotted(data, key, parse_value(value, key))
    if kind is TaskConfig:
        _refuse_old_engine_keys(data, lambda key: _where((key,), path, lines, overrides))
    try:
        config = kind.model_validate(data)
    except ValidationError as exc:
        problems = [f"{_where(e['loc'], path, lines, overrides)}: {describe(e)}" for e in exc.errors()]
        raise UserError("invalid task:\n  " + "\n  ".join(problems)) from None

    def where(loc: tuple) -> str:
        return _where(loc, path, lines, overrides)

    def resolve(raw: str | None, key: str) -> str | None:
        base = Path.cwd() if key in overrides else path.parent
        return raw if raw is None else str((base / raw).resolve())

    config.data.cache = resolve(config.data.cache, "data.cache")
    if isinstance(config, TaskConfig):
        for name, source in config.data.sources.items():
            source.path = resolve(source.path, f"data.sources.{name}.path")
    else:
        config.data.path = resolve(config.data.path, "data.path")
    if isinstance(config, TaskConfig):
        config.program = resolve(config.program, "program")
        if Path(config.program).is_dir():
            raise UserError(f"{where(('program',))}: {config.program} is a directory; name a program file (.pl)")
        if not Path(config.program).is_file():
            raise UserError(f"{where(('program',))}: program file {config.program} not found")
        for name, spec in config.networks.items():
            spec.init = resolve(spec.init, f"networks.{name}.init")
            if spec.pretrain is not None:
                spec.pretrain.task = resolve(spec.pretrain.task, f"networks.{name}.pretrain.task")
        files = config.data.query_files
        if files is not None:
            files.train, files.test = (
                resolve(files.train, "data.query_files.train"),
                resolve(files.test, "data.query_files.test"),
            )
            files.ood = resolve(files.ood, "data.query_files.ood")
    if check is not None:
        check(config, where)
    return config


def dump_config(config: TaskConfig | PretrainConfig) -> str:
    """The resolved task as YAML, loadable again by `load_config` (used by run folders and `--resume`)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
