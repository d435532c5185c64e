"""A generated battery of bad input: every task key given a value of the wrong type and (Hypothesis) values out
of its range, every file the toolkit reads given a missing, empty, binary and malformed version, every
command's flags given wrong. Each case must end with exit status 2, exactly one `error:` line that names the
key or file, no traceback and no run folder."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterator
from pathlib import Path

import annotated_types
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from nesy_gedi.assembly.config import PretrainConfig, TaskConfig
from nesy_gedi.cli import main

from .conftest import ROOT

NAMES = {"networks": "mnist_net", "sources": "mnist"}
"""what `<name>` is in the task the battery edits (tasks/mnist_add.yaml)"""
BINARY = bytes(range(256)) * 4


def _leaves(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, FieldInfo]]:
    """Every leaf key of a config model, dotted, with `<name>` maps entered under the task's own names."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        args = typing.get_args(field.annotation)
        nested = [a for a in (field.annotation, *args) if inspect.isclass(a) and issubclass(a, BaseModel)]
        if typing.get_origin(field.annotation) is dict and inspect.isclass(args[1]) and issubclass(args[1], BaseModel):
            yield key, field
            yield from _leaves(args[1], f"{key}.{NAMES.get(name, 'x')}.")
        elif nested:
            yield from _leaves(nested[0], f"{key}.")
        else:
            yield key, field


def _wrong_type(field: FieldInfo) -> str:
    """A YAML value no annotation of the field accepts: a list where a mapping is expected, else a mapping."""
    dict_like = typing.get_origin(field.annotation) is dict or dict in typing.get_args(field.annotation)
    return "[1, 2]" if dict_like else "{wrong: 1}"


def _bounds(field: FieldInfo) -> dict[str, float]:
    """A numeric field's bounds (Gt, Ge, Lt, Le), also inside an optional annotation."""
    found = list(field.metadata)
    for arg in typing.get_args(field.annotation):
        found += list(getattr(arg, "__metadata__", ()))
    bounds: dict[str, float] = {}
    for item in found:
        for kind in ("gt", "ge", "lt", "le"):
            if isinstance(item, getattr(annotated_types, kind.capitalize())):
                bounds[kind] = getattr(item, kind)
    return bounds


def _numeric(field: FieldInfo) -> type | None:
    kinds = {field.annotation, *typing.get_args(field.annotation)}
    bases = {getattr(k, "__origin__", k) for k in kinds}
    return int if int in bases else float if float in bases else None


TASK_KEYS = [(key, field) for key, field in _leaves(TaskConfig) if key not in ("name",)]
PRETRAIN_KEYS = [(key, field) for key, field in _leaves(PretrainConfig) if key not in ("name",)]
RANGED = [(k, f, kind) for k, f in TASK_KEYS if (kind := _numeric(f)) and _bounds(f)]


def _clean_refusal(err: str, named: str, folder: Path) -> None:
    assert sum("error:" in line for line in err.splitlines()) == 1, err
    assert "Traceback" not in err and named in err, err
    assert not folder.exists(), f"{folder} was left behind"


def _run_with(tmp_path: Path, capsys, task: Path, *args: str, command: str = "run") -> tuple[int, str, Path]:
    out = tmp_path / "out"
    code = main([command, str(task), *args, "--out", str(out)])
    return code, capsys.readouterr().err, out


@pytest.mark.parametrize(("key", "field"), TASK_KEYS + PRETRAIN_KEYS, ids=lambda v: v if isinstance(v, str) else "")
def test_every_key_given_the_wrong_type(key, field, tmp_path, capsys):
    task = ROOT / "tasks" / ("mnist_add.yaml" if (key, field) in TASK_KEYS else "gedi_mnist.yaml")
    command = "run" if task.name == "mnist_add.yaml" else "pretrain"
    code, err, out = _run_with(tmp_path, capsys, task, "--set", f"{key}={_wrong_type(field)}", command=command)
    assert code == 2
    _clean_refusal(err, key, out)


def _outside(kind: type, bounds: dict[str, float]) -> st.SearchStrategy:
    """Numbers on the wrong side of one of the bounds."""
    sides = []
    below = bounds.get("gt", bounds.get("ge"))
    if below is not None:
        limit = below if "gt" in bounds else below - (1 if kind is int else 1e-9)
        sides.append(st.integers(max_value=int(limit)) if kind is int else st.floats(max_value=limit, allow_nan=False))
    above = bounds.get("lt", bounds.get("le"))
    if above is not None:
        limit = above if "lt" in bounds else above + (1 if kind is int else 1e-9)
        sides.append(st.integers(min_value=int(limit)) if kind is int else st.floats(min_value=limit, allow_nan=False))
    return st.one_of(*sides)


@pytest.mark.parametrize(("key", "field", "kind"), RANGED, ids=lambda v: v if isinstance(v, str) else "")
def test_every_ranged_key_given_values_out_of_range(key, field, kind, tmp_path_factory, capsys):
    @settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(_outside(kind, _bounds(field)))
    def case(value):
        folder = tmp_path_factory.mktemp("case")
        code, err, out = _run_with(folder, capsys, ROOT / "tasks" / "mnist_add.yaml", "--set", f"{key}={value!r}")
        assert code == 2
        _clean_refusal(err, key, out)

    case()


def _variants(good: bytes, malformed: bytes) -> dict[str, bytes | None]:
    return {"missing": None, "empty": b"", "binary": BINARY, "malformed": malformed}


FILES: dict[str, tuple[bytes, Callable[[Path, Path], list[str]]]] = {}
"""per file the toolkit reads: a malformed version, and the command that reads the file at a path"""


def _task_with(folder: Path, **changes) -> Path:
    data = yaml.safe_load((ROOT / "tasks" / "mnist_add.yaml").read_text())
    data["program"] = str(ROOT / "programs" / "mnist_addition.pl")
    for key, value in changes.items():
        data[key] = value
    path = folder / "task.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


FILES["task"] = (b"name: x\nseed: [\n", lambda folder, path: ["run", str(path)])
FILES["program"] = (
    b"nn(mnist_net,[X],Y,[0,1,2,3,4,5,6,7,8,9]) :: digit(X,Y.\n",
    lambda folder, path: ["run", str(_task_with(folder, program=str(path)))],
)
FILES["query file"] = (
    b"A,B\n1,2\n",
    lambda folder, path: [
        "run",
        str(_task_with(folder, data={"labels": "files", "query_files": {"train": str(path), "test": str(path)}})),
    ],
)
FILES["npz source"] = (
    b"PK\x03\x04 not really a zip",
    lambda folder, path: [
        "run",
        str(_task_with(folder, data={"sources": {"mine": {"kind": "npz", "path": str(path)}}})),
    ],
)
FILES["resumed config"] = (b"seed: [1\n", lambda folder, path: ["run", "--resume", str(path.parent)])
FILES["pretrained network"] = (
    b"\x80\x02 not a checkpoint",
    lambda folder, path: [
        "run",
        str(_task_with(folder, networks={"mnist_net": {"arch": "mnist_lenet", "init": str(path.parent)}})),
    ],
)
NAMES_OF_FILES = {"resumed config": "config.yaml", "pretrained network": "network.pt"}


@pytest.mark.parametrize("variant", ["missing", "empty", "binary", "malformed"])
@pytest.mark.parametrize("kind", list(FILES))
def test_every_file_missing_empty_binary_or_malformed(kind, variant, tmp_path, capsys):
    malformed, command = FILES[kind]
    holder = tmp_path / "given"
    holder.mkdir()
    path = holder / NAMES_OF_FILES.get(kind, f"file{'.npz' if 'npz' in kind else '.csv' if 'query' in kind else ''}")
    content = _variants(b"", malformed)[variant]
    if content is not None:
        path.write_bytes(content)
    args = command(tmp_path, path)
    out = tmp_path / "out"
    code = main([*args, *([] if "--resume" in args else ["--out", str(out)])])
    err = capsys.readouterr().err
    assert code == 2, err
    named = str(path.parent) if kind in NAMES_OF_FILES else str(path)
    _clean_refusal(err, named, out)


FLAGS = [
    (["run", "TASK", "--set", "train.lr"], "--set train.lr"),
    (["run", "TASK", "--set", "=1"], "--set =1"),
    (["run", "--resume", "FOLDER/nothing"], "nothing"),
    (["run", "TASK", "--out", "FILE"], "FILE"),
    (["run", "TASK", "--out", "FILE/run"], "FILE"),
    (["run", "TASK", "--out", "/proc/nesy-gedi-run"], "/proc/nesy-gedi-run"),  # a file system that refuses
    (["pretrain", "TASK", "--out", "/proc/nesy-gedi-run"], "/proc/nesy-gedi-run"),
    (["compare", "TASK", "--methods", "dpl", "--out", "/proc/nesy-gedi-run"], "/proc/nesy-gedi-run"),
    (["compare", "TASK", "--methods", "dpl", "--out", "FILE/grid"], "FILE"),
    (["compare", "TASK", "--methods", "dpl", "--labels", "1", "--label-use", "naming"], "--labels 1: nothing to run"),
    (["run", "TASK", "--bogus"], "--bogus"),
    (["pretrain", "TASK", "--set", "train.lr=[1,"], "train.lr"),
    (["compare", "TASK", "--methods", "nothing"], "nothing"),
    (["compare", "TASK", "--seeds", "0"], "--seeds"),
    (["compare", "TASK", "--seeds", "many"], "--seeds"),
    (["compare", "TASK", "--workers", "0"], "--workers"),
    (["compare", "TASK", "--backend", "cloud"], "--backend"),
    (["compare", "TASK", "--backend", "ray", "--address", "not an address"], "--address"),
    (["compare", "TASK", "--methods", "dpl", "--labels", "1,five"], "--labels"),
    (["compare", "TASK", "--methods", "dpl", "--labels", "-1"], "--labels"),
    (["compare", "TASK", "--methods", "dpl", "--labels", "1", "--label-use", "teach"], "--label-use"),
    (["compare", "TASK", "--methods", "dpl", "--labels", "1", "--label-target", "85"], "--label-target"),
    (["shortcuts", "TASK", "--set", "data.combinations=[[0, 1"], "data.combinations"),
    (["keys", "--bogus"], "--bogus"),
    (["fetch-data", "--dir", "FOLDER/nothing/here"], "nothing"),
]


@pytest.mark.parametrize(("args", "named"), FLAGS, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_every_command_given_a_wrong_flag(args, named, tmp_path, capsys):
    (tmp_path / "FILE").write_text("a file, not a folder")
    task = ROOT / "tasks" / ("gedi_mnist.yaml" if args[0] == "pretrain" else "mnist_add.yaml")
    fill = {"TASK": str(task), "FOLDER": str(tmp_path), "FILE": str(tmp_path / "FILE")}
    args = [next((a.replace(k, v) for k, v in fill.items() if k in a), a) for a in args]
    named = next((named.replace(k, v) for k, v in fill.items() if k in named), named)
    assert _exit_status(args) == 2
    err = capsys.readouterr().err
    _clean_refusal(err, named, tmp_path / "out")


def _exit_status(args: list[str]) -> int:
    """What the shell would see: main's return value, or argparse's exit status for a flag it refuses."""
    try:
        return main(args)
    except SystemExit as stop:
        return int(stop.code)
