"""Every task key, method argument and architecture with its default and meaning, read off the pydantic
models and the registries, so that the documentation (`docs/tasks.md`, `nesy-gedi keys`) cannot drift."""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from nesy_gedi.assembly.config import PretrainConfig, TaskConfig
from nesy_gedi.methods import METHODS
from nesy_gedi.networks import ARCHITECTURES
from nesy_gedi.ssl.objectives import OBJECTIVES

Row = tuple[str, str, str]
"""key, default, meaning"""


def _nested(annotation: Any) -> type[BaseModel] | None:
    """The model whose keys nest under this field (also an optional one: `Model | None`)."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if inspect.isclass(candidate) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, BaseModel):
        return "as below"
    return str(value)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return _value(field.default_factory())
    return _value(field.default) if field.default is not PydanticUndefined else "required"


def _meaning(field: FieldInfo) -> str:
    text = (field.description or "").replace("|", "\\|")  # a pipe would end the Markdown table cell
    choices = [a for a in typing.get_args(field.annotation) if typing.get_origin(a) is Literal] or [field.annotation]
    values = [v for c in choices if typing.get_origin(c) is Literal for v in typing.get_args(c)]
    if values and not all(f"`{v}`" in text for v in values):
        listed = " \\| ".join(f"`{v}`" for v in values)
        text = f"{listed}: {text}" if text else listed
    return text


def key_rows(model: type[BaseModel], prefix: str = "", within: str | None = None) -> list[Row]:
    """One row per leaf key, dotted; a nested model's keys under its name, a map of models under `<name>`.
    `within`: the optional section these keys belong to (a key required there is required only with it)."""
    rows: list[Row] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        nested = _nested(field.annotation)
        value = typing.get_args(field.annotation)[1] if typing.get_origin(field.annotation) is dict else None
        if inspect.isclass(value) and issubclass(value, BaseModel):  # a map of sections: `networks.<name>.arch`
            if field.default_factory is not None:  # the map's own default, e.g. `data.sources`
                default = {k: v.model_dump(exclude_defaults=True) for k, v in field.default_factory().items()}
                shown = json.dumps(default).replace('"', "")  # YAML's flow style: {mnist: {kind: mnist}}
                rows.append((f"`{key}`", f"`{shown}`", _meaning(field)))
            rows += key_rows(value, f"{key}.<name>.", within)
        elif nested is not None:
            optional = type(None) in typing.get_args(field.annotation)
            rows += key_rows(nested, f"{key}.", key if optional else within)
        else:
            default = _default(field)
            if default == "required" and within:
                default = f"required with {within}"
            rows.append((f"`{key}`", f"`{default}`", _meaning(field)))
    return rows


def _table(header: list[str], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _arguments(registry: Mapping[str, Any]) -> str:
    """One row per argument, entries that share an argument model listed together."""
    groups: dict[type, list[str]] = {}
    for name, entry in registry.items():
        groups.setdefault(entry.Args, []).append(name)
    rows = []
    for model, names in groups.items():
        who = ", ".join(f"`{n}`" for n in names)
        arguments = key_rows(model) or [("none", "", "")]
        rows += [(who, *row) for row in arguments]
    return _table(["method", "argument", "default", "meaning"], rows)


def key_tables() -> str:
    """The generated reference: task keys, pretraining keys, method and objective arguments, architectures."""
    architectures = [
        (f"`{name}`", (inspect.getdoc(factory) or "").splitlines()[0]) for name, factory in ARCHITECTURES.items()
    ]
    return "\n".join(
        [
            "### Program tasks (`nesy-gedi run`)",
            "",
            _table(["key", "default", "meaning"], key_rows(TaskConfig)),
            "",
            "### Pretraining tasks (`nesy-gedi pretrain`)",
            "",
            _table(["key", "default", "meaning"], key_rows(PretrainConfig)),
            "",
            "### Training methods' arguments (`method_args` of a program task)",
            "",
            _arguments(METHODS),
            "",
            "### Pretraining objectives' arguments (`method_args` of a pretraining task)",
            "",
            _arguments(OBJECTIVES),
            "",
            "### Architectures (`networks.<name>.arch`, `network.arch`)",
            "",
            _table(["arch", "what"], architectures),
        ]
    )
