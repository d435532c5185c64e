"""A program as a `torch.nn.Module` (as scallopy does): the networks' outputs in, the probability of every
answer out, through the compiled engine's KLay circuit, differentiable, so the program drops into any training
loop. The circuit is DeepProbLog's (grounding and SDD by its `ExactEngine` machinery), compiled once for
the query's shape and cached on disk like the engine's."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from nesy_gedi.errors import UserError
from nesy_gedi.logic.compiled_engine import CompiledEngine
from nesy_gedi.logic.program import Program
from nesy_gedi.logic.query import QueryTemplate


class ProgramModule(nn.Module):
    """`ProgramModule(program, "addition(A, B, Sum)", "Sum", {"A": "image", "B": "image"})`, then
    `module({"A": p_a, "B": p_b})` with each input's distribution over its predicate's domain (batch, domain)
    (an input of N images: (batch, N, domain)) returns (batch, answers): p(answer) for every value in
    `module.answers`. A true/false query (`output` None) has the one answer `true`. An input that two
    networks read is given per network: `{("digit_net", "A"): ..., ("parity_net", "A"): ...}`. The
    program's learnable `t(p)` probabilities are `program_parameters`, the module `nesy-gedi run` trains
    (logits: a fact's sigmoid, a disjunction's softmax; `.values()` reads them). With `semiring="log"` it
    returns log p(answer) (no underflow of tiny probabilities; refused for a `t(_)` annotated disjunction)."""

    def __init__(
        self,
        program: str | Path | Program,
        term: str,
        output: str | None,
        inputs: Mapping[str, str | int],
        cache_dir: str | Path | None = None,
        semiring: str = "real",
    ) -> None:
        super().__init__()
        program = program if isinstance(program, Program) else Program(program)
        self.template = QueryTemplate(program, term, output, inputs)
        networks = {p.network: nn.Identity() for p in program.neural_predicates}
        self.engine = CompiledEngine(
            program, networks, {}, self.template, cache_dir=Path(cache_dir) if cache_dir else None, semiring=semiring
        )
        """the engine `nesy-gedi run` trains through, on the same template: this module is its forward"""
        self.answers, _ = self.engine.answer_values(self._leaves_of_uniform())
        """the answer each output column stands for"""
        self.program_parameters = self.engine.program_parameters

    def _placed(self) -> list[tuple[str, str, str, int]]:
        """Per image a network reads: the network, the image's placeholder, its input variable and its index
        within that input."""
        owner = [(name, k) for name, count in self.template.counts.items() for k in range(count)]
        return [
            (net, str(self.template.images[p]), *owner[p]) for net, read in self.template.readers.items() for p in read
        ]

    def _leaves_of_uniform(self) -> dict[tuple[str, str], torch.Tensor]:
        sizes = {p.network: len(p.domain) for p in self.template.program.neural_predicates}
        return {(net, ph): torch.full((1, sizes[net]), 1.0 / sizes[net]) for net, ph, _, _ in self._placed()}

    def _leaf(self, probabilities: Mapping, network: str, input_name: str, k: int) -> torch.Tensor:
        found = probabilities.get((network, input_name), probabilities.get(input_name))
        if found is None:
            raise UserError(f"ProgramModule: no probabilities for input '{input_name}' (read by {network})")
        count = self.template.counts[input_name]
        return found[:, k] if count > 1 or found.ndim == 3 else found

    def forward(self, probabilities: Mapping[str | tuple[str, str], torch.Tensor]) -> torch.Tensor:
        leaves = {(net, ph): self._leaf(probabilities, net, name, k) for net, ph, name, k in self._placed()}
        return self.engine.answer_values(leaves)[1]
