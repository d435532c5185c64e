"""The task's supervised query as a template: placeholder constants stand for images.

Keeping the images out of the query term is what lets the engine compile one circuit per template
and label value (`addition(a, b, 7)`) instead of one per example; the images are bound by substitution.
A query with an output variable is labelled with that variable's value; a query without one is a
true/false query (`less(a, b)`), labelled `true` or `false`, and a `false` example is a DeepProbLog query
with target probability 0 (its loss is on 1 - p(query)).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property

import numpy as np
import torch
from deepproblog.query import Query
from problog.errors import ProbLogError
from problog.logic import Constant, Term, Var, list2term

from nesy_gedi.errors import UserError
from nesy_gedi.logic.program import FALSE, TRUE, Distribution, Program


class QueryTemplate:
    """`term` with one variable per input and, unless it is a true/false query, `output` for the label;
    `inputs` maps each input variable to `image` (one image), N (a list of N images), or
    `{"source": name, "images": image | N}` (images of a named source). Errors name the task keys
    `query.*` these come from."""

    def __init__(
        self,
        program: Program,
        term: str,
        output: str | None,
        inputs: Mapping[str, str | int | Mapping],
        step: Term | None = None,
    ) -> None:
        self.program = program
        self.step = step
        """a chain task's step goal (`engine.chain`), its list elements and outputs unbound, its state given"""
        try:
            parsed = Term.from_string(term)
        except ProbLogError as exc:
            raise UserError(f"query.term: '{term}' is not a ProbLog term: {exc}") from None
        if not program.defines(parsed.functor, parsed.arity):
            raise UserError(
                f"query.term: {program.path} does not define {parsed.functor}/{parsed.arity}; "
                f"it defines {program.defined()}"
            )
        variables = {str(v): v for v in parsed.variables()}
        for name in inputs:
            if name not in variables:
                raise UserError(f"query: variable '{name}' does not occur in query.term '{term}'")
        if output is not None and output in inputs:
            raise UserError(
                f"query.output: '{output}' is also an input (query.inputs); the output is the label's variable, "
                "or leave query.output out for a true/false query"
            )
        if output is not None and output not in variables:
            raise UserError(f"query.output: variable '{output}' does not occur in query.term '{term}'")
        self.output = None if output is None else variables[output]
        if self.output is not None and self.output not in parsed.args:
            raise UserError(f"query.output: '{output}' must be an argument of '{term}' itself, not nested")
        self.output_index = None if self.output is None else parsed.args.index(self.output)
        self.images: list[Term] = []
        self.sources: list[str | None] = []
        """the image source each position reads (None: the task's first)"""
        self.counts: dict[str, int] = {}
        """images per input variable"""
        substitution = {}
        for name, spec in inputs.items():
            form, source = (spec["images"], spec["source"]) if isinstance(spec, Mapping) else (spec, None)
            if form == "image":
                placeholders = [Term(name.lower())]
                substitution[variables[name]] = placeholders[0]
            else:
                placeholders = [Term(f"{name.lower()}_{i}") for i in range(form)]
                substitution[variables[name]] = list2term(placeholders)
            self.images.extend(placeholders)
            self.sources.extend([source] * len(placeholders))
            self.counts[name] = len(placeholders)
        self.term = parsed.apply_term(substitution)
        left = [str(v) for v in self.term.variables() if v != self.output]
        if left:
            raise UserError(
                f"query.term: variable(s) {', '.join(left)} of '{term}' are neither inputs nor the output; "
                "bind each to an input (query.inputs) or make it the output (query.output)"
            )

    @cached_property
    def readers(self) -> dict[str, list[int]]:
        """The image positions each network reads (`Program.readers`). For a chain, what one step reads, for
        every element of the lists it reads: grounding the whole query with its output open would grow
        exponentially with the lists' length."""
        if self.step is None:
            return self.program.readers(self.term, self.images)
        starts = np.cumsum([0, *self.counts.values()])[:-1].tolist()
        firsts = [self.images[start] for start in starts]
        k = len(firsts)
        goal = self.step(*firsts, self.step.args[k], Var("Out"), Var("Next"))
        read = self.program.readers(goal, firsts)
        counts = list(self.counts.values())
        return {
            network: [p for j in sorted(lists) for p in range(starts[j], starts[j] + counts[j])]
            for network, lists in read.items()
        }

    def leaves(self, distributions: Mapping[str, torch.Tensor]) -> dict[tuple[str, str], torch.Tensor]:
        """Per (network, placeholder), the network's distribution for that image of every query, (batch,
        domain), from each network's distributions for its images of the batch, query by query (batch * the
        positions it reads, domain): what an engine's `log_likelihood` reads."""
        found = {}
        for net, values in distributions.items():
            read = self.readers[net]
            per_query = values.view(-1, len(read), values.shape[-1])
            for j, p in enumerate(read):
                found[(net, str(self.images[p]))] = per_query[:, j]
        return found

    @cached_property
    def position(self) -> dict[str, int]:
        """Each placeholder's position in `images`, by name (as circuits and leaves name them)."""
        return {str(ph): p for p, ph in enumerate(self.images)}

    @property
    def boolean(self) -> bool:
        """A true/false query: no output variable, labels `true` and `false`."""
        return self.output is None

    @property
    def images_per_query(self) -> int:
        return len(self.images)

    def label(self, concepts: Sequence[int], predicted: dict[str, Sequence[int]] | None = None) -> Term:
        """The program's answer when the query's images have these true concepts (and, optionally, each
        network predicts the given concepts instead: `Program.answer`)."""
        return self.program.answer(self.term, self.output, self.images, concepts, predicted)

    def distribution(
        self, concepts: Sequence[int] | None, predicted: dict[str, Sequence[int]] | None = None
    ) -> Distribution:
        """The program's distribution over answers for these concepts (None: any concepts, uniformly)."""
        return self.program.distribution(self.term, self.output, self.images, concepts, predicted)

    def prediction(self, concepts: Sequence[int], predicted: dict[str, Sequence[int]] | None = None) -> Term:
        """The program's most probable answer: its answer, when its own facts do not make it uncertain."""
        if not self.program.probabilistic:
            return self.label(concepts, predicted)
        found = self.distribution(concepts, predicted)
        return max(sorted(found, key=str), key=found.get)

    def outcome(self, concepts: Sequence[int], predicted: dict[str, Sequence[int]] | None = None) -> object:
        """What the program concludes: its answer, or for a program with probabilistic facts its whole
        distribution over answers (two concept tuples are told apart by either)."""
        if not self.program.probabilistic:
            return self.label(concepts, predicted)
        return frozenset((str(a), round(p, 9)) for a, p in self.distribution(concepts, predicted).items() if p > 0)

    def labels(self) -> set[str]:
        """Every label some concepts can give (true/false queries: `true` and `false`)."""
        if self.boolean:
            return {str(TRUE), str(FALSE)}
        return {str(answer) for answer in self.distribution(None)}

    def query(self, tensors: Sequence[str], indices: Sequence[int], label: Term) -> Query:
        """A DeepProbLog query whose image at position p is entry `indices[p]` of the tensor source
        `tensors[p]`; a true/false query has target probability 1 (`true`) or 0 (`false`)."""
        substitution = {
            ph: Term("tensor", Term(tensor, Constant(int(i))))
            for ph, tensor, i in zip(self.images, tensors, indices, strict=True)
        }
        return self.with_label(substitution, label)

    def with_label(self, substitution: dict[Term, Term], label: Term) -> Query:
        """The query for this label with its placeholders bound by `substitution`."""
        if self.boolean:
            return Query(self.term, substitution, p=1.0 if label == TRUE else 0.0, output_ind=())
        args = list(self.term.args)
        args[self.output_index] = label
        return Query(self.term(*args), substitution, output_ind=(self.output_index,))
