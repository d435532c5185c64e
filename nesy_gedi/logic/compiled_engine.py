"""Compiled batched inference: each query template is compiled once and evaluated on whole batches.

A template is a query with placeholder images (`addition(a, b, 7)`, or `addition(a, b, Z)` for all
answers at once). It is grounded and compiled to an SDD by DeepProbLog's own `ExactEngine` machinery
(ProbLog + PySDD) and evaluated by KLay as layered batched tensor operations (`circuit.py`): every query
of a batch at once gets the probabilities (and gradients) DeepProbLog computes query by query, and each
network is called once per batch on all the images it has to read. The real semiring (DeepProbLog's
linear arithmetic) by default; the log semiring, where exact, keeps tiny probabilities from underflowing.
"""

from __future__ import annotations

import hashlib
import math
import pickle
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path

import torch
from deepproblog.query import Query
from problog.logic import Term
from torch import nn

from nesy_gedi.files import write_atomic
from nesy_gedi.logic.circuit import Circuit, compile_template
from nesy_gedi.logic.engine import LOSS_FLOOR, Engine, Leaves, quiet_deepproblog
from nesy_gedi.logic.program import FALSE, TRUE, Program
from nesy_gedi.logic.query import QueryTemplate

CACHE_FORMAT = "nesy_gedi-klay-circuit-2"


def cache_key(program_text: str, template: str) -> str:
    """Stable across processes (Python's own hash() is salted per process): program, template, versions."""
    versions = ",".join(f"{p}={metadata.version(p)}" for p in ("deepproblog", "problog", "pysdd", "klaycircuits"))
    return hashlib.sha256(f"{CACHE_FORMAT}\n{versions}\n{template}\n{program_text}".encode()).hexdigest()


class CompiledEngine(Engine):
    """DeepProbLog's semantics, evaluated as batched KLay circuits.

    Per query shape (the query with placeholders and a variable output) the engine compiles the
    all-answers circuit, which gives p(query) for every label at once: prediction and, with
    `circuits="answers"` (the default), training read it. With `circuits="labels"` training reads the
    circuits of the labelled queries seen so far instead, merged into one circuit whose shared nodes are
    stored once: for programs whose all-answers circuit is too large to compile (3-digit numbers), at the
    price of a circuit that grows with every new label. Circuits live in memory and, when `cache_dir` is
    given, on disk under `cache_key`, so a second process reuses them. `semiring`: "real" (DeepProbLog's
    arithmetic) or "log" (log-probabilities; refused where not exact, see `circuit.py`).
    """

    def __init__(
        self,
        program: Program,
        networks: dict[str, nn.Module],
        sources: dict[str, torch.Tensor],
        template: QueryTemplate | None = None,
        *,
        cache_dir: Path | None = None,
        circuits: str = "answers",
        semiring: str = "real",
    ) -> None:
        super().__init__(program, networks, sources, template)
        self.circuits, self.semiring = circuits, semiring
        self.program_text = program.text
        self.domains = {p.network: len(p.domain) for p in program.neural_predicates}
        self.cache_dir = cache_dir
        self.programs: dict[str, Circuit] = {}
        self._resolved: dict[tuple[Term, bool], tuple[Circuit, str]] = {}
        self._labels: dict[Term, tuple[Circuit, str]] = {}

    def _prefix(self, shape: Term) -> str:
        """File names are `<shape key>-<template key>.pkl`: a shape's cached templates are found by prefix."""
        return cache_key(self.program_text, str(shape))[:32]

    def _load_shape(self, program: Circuit, shape: Term) -> None:
        """Merge every cached labelled template of a shape at once, so its layers are built once, not per label."""
        if self.cache_dir is None:
            return
        for path in sorted(self.cache_dir.glob(f"{self._prefix(shape)}-*.pkl")):
            with open(path, "rb") as f:
                cached = pickle.load(f)
            if str(shape) not in cached.templates:  # the all-answers circuit shares the prefix
                program.merge(cached)

    def _compiled(self, shape: Term, query: Term, output: int | None) -> Circuit:
        """The circuit of one template, from the disk cache or compiled now (then saved atomically)."""
        if self.cache_dir is None:
            with quiet_deepproblog(), self.grounding(query):
                return compile_template(self.model, query, output, self.domains)
        name = f"{self._prefix(shape)}-{cache_key(self.program_text, str(query))}.pkl"
        if (self.cache_dir / name).is_file():
            with open(self.cache_dir / name, "rb") as f:
                return pickle.load(f)
        with quiet_deepproblog(), self.grounding(query):
            program = compile_template(self.model, query, output, self.domains)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.cache_dir / name, lambda tmp: Path(tmp).write_bytes(pickle.dumps(program)))
        return program

    def program_for(self, query: Query, all_answers: bool) -> tuple[Circuit, str]:
        """The program answering `query` and the name of the query's answer in it.

        All answers: the shape's all-answers circuit. Otherwise the circuits of every label of the shape seen
        so far, merged into one circuit (shared nodes stored once) so that a batch runs it once. A true/false
        query (no output argument) is its own shape: its circuit is the query's. Memoised on the query term,
        whose hash ProbLog caches.
        """
        known = self._resolved.get((query.query, all_answers))
        if known is not None:
            return known
        shape = query.variable_output().query
        wanted = shape if all_answers else query.query
        key = f"{'answers' if all_answers else 'labels'}:{shape}"
        if key not in self.programs:
            self.programs[key] = Circuit()
            if not all_answers:
                self._load_shape(self.programs[key], shape)
        program = self.programs[key]
        if str(wanted) not in program.templates:
            program.merge(self._compiled(shape, wanted, query.output_ind[0] if query.output_ind else None))
        self._resolved[(query.query, all_answers)] = (program, str(query.query))
        return program, str(query.query)

    def _network_outputs(self, requests: dict[str, list[list[Term]]]) -> dict[str, Iterator[torch.Tensor]]:
        """Each network called once on all the image blocks asked of it; its outputs, block by block."""
        return {
            net: iter(
                self.distributions(net, [ref for block in blocks for ref in block]).split([len(b) for b in blocks])
            )
            for net, blocks in requests.items()
        }

    def evaluate(
        self, queries: Sequence[Query], all_answers: bool
    ) -> list[tuple[Circuit, tuple[list[str], torch.Tensor], list[int], list[str]]]:
        """Run the circuit of each query shape on its queries.

        Per shape: the circuit, its answers and their probabilities (log-probabilities in the log semiring)
        (batch, answers), the query rows and each row's answer name.
        """
        groups: dict[int, tuple[Circuit, list[int], list[str]]] = {}
        for row, query in enumerate(queries):
            program, name = self.program_for(query, all_answers)
            group = groups.setdefault(id(program), (program, [], []))
            group[1].append(row)
            group[2].append(name)
        plans = list(groups.values())
        requests: dict[str, list[list[Term]]] = {}
        for program, rows, _ in plans:
            for net, placeholder in program.leaves():
                requests.setdefault(net, []).append([queries[r].substitution[Term(placeholder)] for r in rows])
        outputs = self._network_outputs(requests)
        params = self.program_parameters.each()
        results = []
        for program, rows, names in plans:
            leaf_outputs = {(net, ph): next(outputs[net]) for net, ph in program.leaves()}
            results.append((program, program.table(leaf_outputs, params, self.semiring), rows, names))
        return results

    def _picked(self, names: list[str], table: torch.Tensor, wanted: Sequence[str]) -> torch.Tensor:
        """Row k's value of answer `wanted[k]` in the (batch, answers) `table`; an answer the program cannot
        prove has probability 0, as in DeepProbLog."""
        column = {name: i for i, name in enumerate(names)}
        which = [column.get(name, len(names)) for name in wanted]
        if len(names) in which:
            table = torch.cat([table, torch.full_like(table[:, :1], self._zero)], 1)
        return table.gather(1, torch.tensor(which, device=table.device).unsqueeze(1)).squeeze(1)

    def _values(self, queries: Sequence[Query]) -> torch.Tensor:
        """Each query's value from its circuit (p, or log p in the log semiring)."""
        parts, order = [], []
        for _, (names, table), rows, wanted in self.evaluate(queries, all_answers=self.circuits == "answers"):
            parts.append(self._picked(names, table, wanted))
            order.extend(rows)
        result = torch.cat(parts)
        return result[torch.argsort(torch.tensor(order, device=result.device))]

    def label_values(self, leaves: Leaves, labels: Sequence[Term]) -> torch.Tensor:
        """p(label) (log p in the log semiring) of each query of the task's template, from the networks'
        distributions: one circuit run for the batch, no query term built once a label has been seen."""
        assert self.template is not None, "label_values needs the engine's query template"
        found = []
        for label in labels:
            if label not in self._labels:
                query = self.template.with_label({}, label)
                self._labels[label] = self.program_for(query, all_answers=self.circuits == "answers")
            found.append(self._labels[label])
        program = found[0][0]  # the template's one circuit (its labels' circuits merge into one)
        used = {leaf: leaves[leaf] for leaf in program.leaves()}
        names, table = program.table(used, self.program_parameters.each(), self.semiring)
        return self._picked(names, table, [name for _, name in found])

    def answer_values(self, leaves: Leaves) -> tuple[list[Term], torch.Tensor]:
        """Every answer of the task's template and its p (log p in the log semiring), (batch, answers), from
        the networks' distributions: `ProgramModule`'s forward. A true/false template's one answer is `true`."""
        assert self.template is not None, "answer_values needs the engine's query template"
        ind = () if self.template.boolean else (self.template.output_index,)
        program, _ = self.program_for(Query(self.template.term, output_ind=ind), all_answers=True)
        names, table = program.table(
            {leaf: leaves[leaf] for leaf in program.leaves()}, self.program_parameters.each(), self.semiring
        )
        return [program.outputs[name] for name in names], table

    def log_likelihood(self, leaves: Leaves, labels: Sequence[Term]) -> torch.Tensor:
        """log p(label): exact in the log semiring; DeepProbLog's floored log(p + 1e-12) in the real one."""
        values = self.label_values(leaves, labels)
        return values if self.semiring == "log" else torch.log(values.clamp(min=0.0) + LOSS_FLOOR)

    @property
    def compile_seconds(self) -> float:
        """Seconds DeepProbLog spent grounding and compiling the circuits in use (a circuit read from the disk
        cache counts the time it took when it was compiled)."""
        return sum(circuit.compile_seconds for circuit in self.programs.values())

    @property
    def _zero(self) -> float:
        return float("-inf") if self.semiring == "log" else 0.0

    def probabilities(self, queries: Sequence[Query]) -> torch.Tensor:
        values = self._values(queries)
        return values.exp() if self.semiring == "log" else values

    def log_probabilities(self, queries: Sequence[Query]) -> torch.Tensor:
        """log p(query): exact in the log semiring; DeepProbLog's floored log(p + 1e-12) in the real one."""
        return self._values(queries) if self.semiring == "log" else super().log_probabilities(queries)

    @torch.no_grad()
    def predict(self, queries: Sequence[Query]) -> list[Term | None]:
        """Each query's most probable answer; a true/false query's is TRUE when p(query) > 0.5."""
        predictions: list[Term | None] = [None] * len(queries)
        half = math.log(0.5) if self.semiring == "log" else 0.5
        for program, (names, table), rows, wanted in self.evaluate(queries, all_answers=True):
            if not queries[rows[0]].output_ind:  # a true/false shape: every row asks the same query
                p = table[:, names.index(wanted[0])] if wanted[0] in names else None
                for k, row in enumerate(rows):
                    predictions[row] = TRUE if p is not None and float(p[k]) > half else FALSE
                continue
            if not names:
                continue
            best = table.argmax(1).tolist()
            for k, row in enumerate(rows):
                predictions[row] = program.outputs[names[best[k]]]
        return predictions
