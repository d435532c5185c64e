"""A program task's images: the sources its query inputs read, which positions each network reads, and
what concept every image is for those networks.

A query input reads one source (`query.inputs`: the first of `data.sources` unless it names another); one
image may feed several neural predicates and networks. Which positions a network reads is found from the
program (`QueryTemplate.readers`), so a network is scored and trained on exactly the images it sees. Its
domain value i stands for the source's class i, or for the class named `networks.<name>.classes[i]`.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nesy_gedi.assembly.config import TaskConfig
from nesy_gedi.data.images import ImageData, to_tensor
from nesy_gedi.data.queries import Position
from nesy_gedi.data.sources import load_source
from nesy_gedi.errors import UserError
from nesy_gedi.logic.query import QueryTemplate

SPLITS = ("train", "test")


@dataclass(frozen=True)
class TaskImages:
    data: dict[str, ImageData]
    """the loaded sources, by the task's name for them"""
    positions: dict[str, list[Position]]
    """per split (`train`, `test`), where each position of a query reads its images"""
    readers: dict[str, list[int]]
    """per network, the positions it reads"""
    source_of: dict[str, str]
    """per network, the source it reads"""

    def tensors(self, device: torch.device) -> dict[str, torch.Tensor]:
        """Every split of every source in the networks' input domain, by tensor source name."""
        return {
            f"{name}_{split}": to_tensor(getattr(data, split).images, device)
            for name, data in self.data.items()
            for split in SPLITS
        }

    @property
    def description(self) -> str:
        return "; ".join(f"{name}: {data.source}" for name, data in self.data.items())


def _concepts(config: TaskConfig, network: str, data: ImageData, values: list[str], source: str) -> np.ndarray:
    """Source class label -> the network's domain index (-1 for classes outside its domain); `values`: the
    domain's values as the program writes them."""
    named, size = config.networks[network].classes, len(values)
    concept = np.full(len(data.classes), -1, dtype=np.int64)
    if named is None:
        if len(data.classes) < size:
            raise UserError(
                f"networks.{network}: its domain has {size} values but source '{source}' has {len(data.classes)} "
                f"classes ({', '.join(data.classes)}): values {len(data.classes)} to {size - 1} would never have an "
                f"image; map the classes with networks.{network}.classes or give the source every class"
            )
        _check_names(network, values, data.classes, source)
        concept[:size] = np.arange(size)
        return _every_value_seen(concept, data, network, values, source)
    if len(named) != size:
        raise UserError(f"networks.{network}.classes: {len(named)} names for a domain of {size} values")
    for value, name in enumerate(named):
        if name not in data.classes:
            raise UserError(
                f"networks.{network}.classes: '{name}' is not a class of source '{source}' ({', '.join(data.classes)})"
            )
        concept[data.classes.index(name)] = value
    return _every_value_seen(concept, data, network, values, source)


def _every_value_seen(concept: np.ndarray, data: ImageData, network: str, values: list[str], source: str) -> np.ndarray:
    """Every domain value has a training image of its class: a value without one could never be learned or
    asked (labels outside the classes the domain reads, a class folder left empty)."""
    seen = set(concept[np.unique(data.train.labels)].tolist())
    unseen = [f"{values[v]} (class '{data.classes[c]}')" for c, v in enumerate(concept) if v >= 0 and v not in seen]
    if unseen:
        raise UserError(
            f"networks.{network}: source '{source}' has no training image for domain value(s) "
            f"{', '.join(unseen[:10])}{' ...' if len(unseen) > 10 else ''}; give the source training images of every "
            f"class the network's domain reads, or map the values with networks.{network}.classes"
        )
    return concept


def _check_names(network: str, values: list[str], classes: list[str], source: str) -> None:
    """Without `classes`, value i reads class i. A domain of names (not numbers) that are not the read
    source's class names in that order is a network reading the wrong images (garment names over digits),
    or a mapping the task must state."""
    if all(re.fullmatch(r"-?\d+", v) for v in values) or values == classes[: len(values)]:
        return
    raise UserError(
        f"networks.{network}: its domain values ({', '.join(values)}) are not the classes of source '{source}' that "
        f"its input reads ({', '.join(classes)}), and without networks.{network}.classes value i reads class i "
        f"('{values[0]}' would be {source}'s '{classes[0]}'): if the network should read another source, add it to "
        "data.sources and name it in query.inputs (`{images: ..., source: NAME}`); else list the source classes "
        f"its values stand for in networks.{network}.classes"
    )


def task_images(config: TaskConfig, template: QueryTemplate, sizes: dict[str, int], cache: Path) -> TaskImages:
    """Load the sources the inputs read and map every position's classes to its readers' concepts."""
    first = next(iter(config.data.sources))
    names = [source or first for source in template.sources]
    for name in dict.fromkeys(names):
        if name not in config.data.sources:
            raise UserError(f"query.inputs: source '{name}' is not in data.sources ({', '.join(config.data.sources)})")
    data = {}
    for name in dict.fromkeys(names):
        spec = config.data.sources[name]
        data[name] = load_source(spec.kind, spec.path, spec.download, cache)
    readers = template.readers
    if not readers:
        raise UserError(
            f"query.term: {config.query.term} reaches no neural predicate of {template.program.path} for any "
            "concepts: no rule can prove it from the networks' facts (a rule that only calls itself, like "
            "`p(X) :- p(X).`, proves nothing); check the program's rules for the query"
        )
    for network in config.networks:
        if network not in readers:
            raise UserError(f"networks.{network}: the query never reaches its predicates; remove it or use it")
    source_of = {}
    for network, read in readers.items():
        used = sorted({names[p] for p in read})
        if len(used) > 1:
            raise UserError(
                f"networks.{network}: reads images of two sources ({', '.join(used)}); give each source its own "
                "network (a network has one input shape and one class mapping)"
            )
        source_of[network] = used[0]
    concept_at: list[np.ndarray | None] = [None] * len(names)
    domains = {p.network: [str(v) for v in p.domain] for p in template.program.neural_predicates}
    for network, read in readers.items():
        mapping = _concepts(config, network, data[source_of[network]], domains[network], source_of[network])
        for p in read:
            if concept_at[p] is not None and not np.array_equal(concept_at[p], mapping):
                raise UserError(
                    f"networks.{network}: reads an image another network reads with other classes; give both the "
                    "same `classes`"
                )
            concept_at[p] = mapping
    for p, mapping in enumerate(concept_at):
        if mapping is None:  # a position no network reads: its images still need a class -> concept map
            concept_at[p] = np.arange(len(data[names[p]].classes))
    for a, b in itertools.combinations(range(len(names)), 2):
        if names[a] == names[b] and not np.array_equal(concept_at[a], concept_at[b]):
            raise UserError(
                f"query.inputs: two inputs read source '{names[a]}' through networks with different classes; "
                "give them one mapping, or separate sources"
            )
    positions = {
        split: [
            Position(f"{name}_{split}", getattr(data[name], split).labels, concept)
            for name, concept in zip(names, concept_at, strict=True)
        ]
        for split in SPLITS
    }
    return TaskImages(data, positions, readers, source_of)
