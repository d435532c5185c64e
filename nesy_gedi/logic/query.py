"""The task's supervised query as a template: placeholder constants stand for images.

Keeping the images out of the query term is what lets the engine compile one circuit per template
and label value (`addition(a, b, 7)`) instead of one per example; the images are bound by substitution.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from deepproblog.query import Query
from problog.errors import ProbLogError
from problog.logic import Constant, Term, list2term

from nesy_gedi.errors import UserError
from nesy_gedi.logic.program import Program


class QueryTemplate:
    """`term` with one variable per input and `output` for the label; `inputs` maps each input variable to
    `image` (one image) or N (a list of N images). Errors name the task keys `query.*` these come from."""

    def __init__(self, program: Program, term: str, output: str, inputs: Mapping[str, str | int]) -> None:
        self.program = program
        try:
            parsed = Term.from_string(term)
        except ProbLogError as exc:
            raise UserError(f"query.term: '{term}' is not a ProbLog term: {exc}") from None
        variables = {str(v): v for v in parsed.variables()}
        for name in [*inputs, output]:
            if name not in variables:
                raise UserError(f"query: variable '{name}' does not occur in query.term '{term}'")
        self.output = variables[output]
        if self.output not in parsed.args:
            raise UserError(f"query.output: '{output}' must be an argument of '{term}' itself, not nested")
        self.output_index = parsed.args.index(self.output)
        self.images: list[Term] = []
        substitution = {}
        for name, form in inputs.items():
            if form == "image":
                placeholders = [Term(name.lower())]
                substitution[variables[name]] = placeholders[0]
            else:
                placeholders = [Term(f"{name.lower()}_{i}") for i in range(form)]
                substitution[variables[name]] = list2term(placeholders)
            self.images.extend(placeholders)
        self.term = parsed.apply_term(substitution)

    @property
    def images_per_query(self) -> int:
        return len(self.images)

    def label(self, concepts: Sequence[int], predicted: dict[str, Sequence[int]] | None = None) -> Term:
        """The program's answer when the query's images have these true concepts (and, optionally, each
        network predicts the given concepts instead: `Program.answer`)."""
        return self.program.answer(self.term, self.output, self.images, concepts, predicted)

    def query(self, source: str, indices: Sequence[int], label: Term) -> Query:
        """A DeepProbLog query whose images are entries `indices` of the tensor source `source`."""
        args = list(self.term.args)
        args[self.output_index] = label
        substitution = {
            ph: Term("tensor", Term(source, Constant(int(i)))) for ph, i in zip(self.images, indices, strict=True)
        }
        return Query(self.term(*args), substitution, output_ind=(self.output_index,))
