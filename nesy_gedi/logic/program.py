"""A DeepProbLog program: parsed once, its neural predicates listed, and its deterministic answers.

The answers of the program for known concepts (each image's true digit) are what labels the queries:
the program is the only source of the task's logic, so no task needs Python of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from problog.engine import DefaultEngine
from problog.errors import ProbLogError
from problog.logic import Clause, Term, Var, term2list
from problog.program import PrologString, SimpleProgram

from nesy_gedi.errors import UserError


@dataclass(frozen=True)
class NeuralPredicate:
    """`nn(network, [X], Y, Domain) :: head(X, Y).`: one network call per input, a choice over Domain."""

    network: str
    head: Term
    input_var: Var
    output_var: Var
    domain: tuple[Term, ...]
    line: int

    def fact(self, image: Term, concept: int) -> Term:
        """The ground fact stating that `image` has the concept with this index in the domain."""
        return self.head.with_probability(None).apply_term(
            {self.input_var: image, self.output_var: self.domain[concept]}
        )


class Program:
    """A program file, checked on load so that mistakes are reported with the file and line."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"{self.path}: program file not found")
        self.text = self.path.read_text()
        try:
            self.clauses = list(PrologString(self.text))
        except ProbLogError as exc:
            line = exc.location[1] if getattr(exc, "location", None) else "?"
            raise UserError(f"{self.path}:{line}: program syntax error: {getattr(exc, 'base_message', exc)}") from None
        self.neural_predicates = [p for c in self.clauses if (p := self._neural(c)) is not None]
        if not self.neural_predicates:
            raise UserError(f"{self.path}: no neural predicate; declare one as nn(Net,[X],Y,[v1,...,vn]) :: pred(X,Y).")
        self._engine = DefaultEngine()
        logic = SimpleProgram()
        # DeepProbLog's ExactEngine loads the lists library (reverse/2, member/2, ...) for every program
        logic.add_clause(Clause(Term("_directive"), Term("use_module", Term("library", Term("lists.pl")))))
        for clause in self.clauses:
            if self._neural(clause) is None:
                logic.add_statement(clause)
        self._logic = self._engine.prepare(logic)
        self._answers: dict[tuple, Term] = {}

    def _line(self, clause: Term) -> int:
        offset = clause.location[1] if clause.location else 0
        return self.text.count("\n", 0, offset) + 1

    def _neural(self, clause: Term) -> NeuralPredicate | None:
        head = clause.head if isinstance(clause, Clause) else clause
        p = getattr(head, "probability", None)
        if not isinstance(p, Term) or p.functor != "nn":
            return None
        line = self._line(clause)
        if p.arity != 4:
            raise UserError(
                f"{self.path}:{line}: nn/{p.arity} is not supported; write nn(Net,[X],Y,[v1,...,vn]) :: pred(X,Y)."
            )
        net, inputs, output, domain = p.args
        inputs = term2list(inputs, False)
        if len(inputs) != 1 or not isinstance(inputs[0], Var) or not isinstance(output, Var):
            raise UserError(f"{self.path}:{line}: a neural predicate takes one input variable and one output variable")
        return NeuralPredicate(str(net), head, inputs[0], output, tuple(term2list(domain, False)), line)

    def check_networks(self, defined: Iterable[str], where: str) -> None:
        """Every network named by an `nn/4` must be defined by the task."""
        defined = set(defined)
        for pred in self.neural_predicates:
            if pred.network not in defined:
                raise UserError(
                    f"{self.path}:{pred.line}: neural predicate {pred.head.functor}/{pred.head.arity} uses network "
                    f"'{pred.network}', which {where} does not define under `networks:` "
                    f"(defined: {', '.join(sorted(defined)) or 'none'})"
                )

    def answer(
        self,
        query: Term,
        output: Var,
        images: Sequence[Term],
        concepts: Sequence[int],
        predicted: dict[str, Sequence[int]] | None = None,
    ) -> Term:
        """The program's unique answer for `output` when each image has its given concept index, or, with
        `predicted`, when network n's predicates see concept `predicted[n][i]` for image i (what a model
        with those networks would conclude: how shortcuts are checked).

        Memoised: a dataset asks the same few questions many times.
        """
        seen = tuple(sorted((n, tuple(v)) for n, v in predicted.items())) if predicted else ()
        key = (query, tuple(concepts), seen)
        if key in self._answers:
            return self._answers[key]
        db = self._logic.extend()
        facts = []
        for i, (image, concept) in enumerate(zip(images, concepts, strict=True)):
            for pred in self.neural_predicates:
                value = predicted[pred.network][i] if predicted else concept
                if value >= len(pred.domain):
                    raise UserError(
                        f"{self.path}:{pred.line}: concept index {value} is outside the domain of "
                        f"{pred.head.functor}/{pred.head.arity} ({len(pred.domain)} values)"
                    )
                facts.append(pred.fact(image, value))
                db.add_fact(facts[-1])
        out_index = query.args.index(output)
        try:
            found = {tuple(args)[out_index] for args in self._engine.query(db, query)}
        except ProbLogError as exc:
            raise UserError(f"{self.path}: cannot evaluate {query}: {exc}") from None
        if len(found) != 1:
            problem = "proves no answer" if not found else f"proves {len(found)} answers ({sorted(map(str, found))})"
            raise UserError(
                f"{self.path}: the program {problem} for the query {query} given {', '.join(map(str, facts))}; "
                "every query needs exactly one label: check `query.term` in the task and the program's rules"
            )
        self._answers[key] = found.pop()
        return self._answers[key]
