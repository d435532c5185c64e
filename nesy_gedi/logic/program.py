"""A DeepProbLog program: parsed once, its neural predicates and defined predicates listed, and its
answers for known concepts.

The answers of the program for known concepts (each image's true digit) are what labels the queries:
the program is the only source of the task's logic, so no task needs Python of its own. A program whose
answer depends on its own probabilistic facts (`0.1::flip.`, `t(0.5)::coin.`) gives a distribution over
answers instead (`distribution`), from ProbLog's exact inference; a true/false query's answers are the
constants `true` and `false`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from problog import get_evaluatable
from problog.engine import DefaultEngine
from problog.errors import ProbLogError
from problog.logic import AnnotatedDisjunction, Clause, Constant, Or, Term, Var, term2list
from problog.program import PrologString, SimpleProgram

from nesy_gedi.errors import UserError
from nesy_gedi.logic.limits import Limits, bounded

TRUE, FALSE = Term("true"), Term("false")
"""the answers of a true/false query"""
Distribution = dict[Term, float]
"""answer -> probability"""


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


def _read_text(path: Path) -> str:
    """The program's text; a folder, a missing file or a file that is not UTF-8 text is a clear error."""
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not a program file; point `program:` at a ProbLog .pl file")
    if not path.is_file():
        raise UserError(f"{path}: program file not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path}: not a text file (byte {exc.start} is not UTF-8); a program is ProbLog text, e.g. a .pl file"
        ) from None
    if "\x00" in text:
        raise UserError(f"{path}: not a text file (it contains NUL bytes); a program is ProbLog text, e.g. a .pl file")
    return text


def _heads(clause: Term) -> list[Term]:
    """The atoms a statement defines (none for a directive)."""
    if isinstance(clause, AnnotatedDisjunction):
        return list(clause.heads)
    if isinstance(clause, Or):
        return clause.to_list()
    if isinstance(clause, Clause):
        return [] if clause.head.functor == "_directive" else [clause.head]
    return [clause]


UNSET = re.compile(r"\bt\(\s*_\s*\)")
"""a learnable probability without an initial value, `t(_)`"""


def _start_unset(text: str, seed: int) -> tuple[str, set[int]]:
    """The text with each `t(_)` given a seeded initial value in (0.05, 0.95) (DeepProbLog draws one with
    Python's unseeded `random()`), and the lines where that happened."""
    rng = np.random.default_rng([seed, 7])
    lines = {text.count("\n", 0, m.start()) + 1 for m in UNSET.finditer(text)}
    return UNSET.sub(lambda _: f"t({rng.uniform(0.05, 0.95):.6f})", text), lines


def _learned(head: Term) -> bool:
    """A head whose probability the run learns: `t(p)`."""
    return isinstance(head.probability, Term) and head.probability.functor == "t"


class Program:
    """A program file, checked on load so that mistakes are reported with the file and line. `seed` starts
    every `t(_)` without an initial value."""

    def __init__(self, path: str | Path, seed: int = 0, limits: Limits | None = None) -> None:
        self.path, self.limits = Path(path), limits or Limits()
        self.text, self.unset = _start_unset(_read_text(self.path), seed)
        """`unset`: the lines whose `t(_)` had no initial value"""
        try:
            self.clauses = list(PrologString(self.text))
        except ProbLogError as exc:
            line = exc.location[1] if getattr(exc, "location", None) else "?"
            raise UserError(f"{self.path}:{line}: program syntax error: {getattr(exc, 'base_message', exc)}") from None
        self.neural_predicates = [p for c in self.clauses if (p := self._neural(c)) is not None]
        if not self.neural_predicates:
            raise UserError(f"{self.path}: no neural predicate; declare one as nn(Net,[X],Y,[v1,...,vn]) :: pred(X,Y).")
        lines: dict[tuple[str, int], int] = {}
        for pred in self.neural_predicates:  # two choices for one fact: a noisy-or of two network calls
            first = lines.setdefault((pred.head.functor, pred.head.arity), pred.line)
            if first != pred.line:
                raise UserError(
                    f"{self.path}:{pred.line}: {pred.head.functor}/{pred.head.arity} is already a neural predicate "
                    f"(line {first}); declare each neural predicate once"
                )
        self.predicates = {(h.functor, h.arity) for c in self.clauses for h in _heads(c)}
        """(name, arity) of every predicate the program defines, neural ones included"""
        self.probabilistic = any(
            h.probability is not None and not self._neural_head(h) for c in self.clauses for h in _heads(c)
        )
        """whether some answer can depend on the program's own probabilistic facts or clauses"""
        self._engine = DefaultEngine()
        logic = SimpleProgram()
        # DeepProbLog's ExactEngine loads the lists library (reverse/2, member/2, ...) for every program
        logic.add_clause(Clause(Term("_directive"), Term("use_module", Term("library", Term("lists.pl")))))
        for clause in self.clauses:
            if self._neural(clause) is None:
                logic.add_statement(clause)
        try:
            self._logic = self._engine.prepare(logic)
        except ProbLogError as exc:  # e.g. a clause that redefines a built-in such as plus/3
            line = exc.location[1] if getattr(exc, "location", None) else None
            where = f"{self.path}:{self.text.count(chr(10), 0, line) + 1}" if line is not None else str(self.path)
            raise UserError(f"{where}: {str(exc).rstrip('.')}; rename the predicate") from None
        self._answers: dict[tuple, Term] = {}
        self._distributions: dict[tuple, Distribution] = {}
        learned = [h for c in self.clauses for h in _heads(c) if _learned(h)]
        self._parameter = {id(head): i for i, head in enumerate(learned)}
        """each `t(_)` head's index among the program's learnable probabilities (DeepProbLog's order)"""
        self._values: list[float] | None = None

    def use_values(self, values: Sequence[float]) -> None:
        """The program's own inference (`distribution`, `answer`) takes these learned `t(_)` probabilities
        (DeepProbLog's order) instead of the initial ones, e.g. for the accuracy ceiling after training."""
        self._values = list(values)
        self._answers.clear()
        self._distributions.clear()

    @staticmethod
    def _neural_head(head: Term) -> bool:
        return isinstance(head.probability, Term) and head.probability.functor == "nn"

    def learned_disjunction(self) -> int | None:
        """The line of the first annotated disjunction with a learnable `t(_)` head, if any: its 'none' weight
        1 - sum t can be exactly 0, which the log semiring cannot represent with a gradient."""
        for clause in self.clauses:
            heads = _heads(clause)
            learned = [h for h in heads if isinstance(h.probability, Term) and h.probability.functor == "t"]
            if len(heads) > 1 and learned:
                return self._line(clause)
        return None

    def defines(self, functor: str, arity: int) -> bool:
        return (functor, arity) in self.predicates

    def defined(self) -> str:
        """The defined predicates as `name/arity`, for messages."""
        return ", ".join(f"{f}/{a}" for f, a in sorted(self.predicates))

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
        if {inputs[0], output} - set(head.with_probability(None).variables()):
            raise UserError(
                f"{self.path}:{line}: the head {head.with_probability(None)} must hold both the input {inputs[0]} and "
                f"the output {output} of its nn/4, e.g. {head.functor}({inputs[0]},{output})"
            )
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

    def grounding(self, goal: Term, engine: object | None = None) -> AbstractContextManager[None]:
        """Grounding `goal` within the task's `limits:` (a recursion without end stops with a message), by this
        program's ProbLog engine or another that grounds it (DeepProbLog's)."""
        return bounded(engine or self._engine, self.limits, f"{self.path}: {goal}")

    def readers(self, query: Term, images: Sequence[Term]) -> dict[str, list[int]]:
        """Which images (positions in `images`) each network's predicates read when `query` is asked: the
        neural facts the query's grounding reaches, with every concept possible for every image."""
        db = self._logic.extend()
        possible = Constant(0.5)
        for image in images:
            for pred in self.neural_predicates:
                for value in range(len(pred.domain)):
                    db.add_fact(pred.fact(image, value).with_probability(possible))
        try:
            with self.grounding(query):
                ground = self._engine.ground_all(db, queries=[query])
        except ProbLogError as exc:
            raise UserError(f"{self.path}: cannot evaluate {query}: {exc}") from None
        reached = {str(node.name) for _, node, kind in ground if kind == "atom"}
        position = {str(image): i for i, image in enumerate(images)}
        found: dict[str, set[int]] = {}
        for pred in self.neural_predicates:
            for image in images:
                if any(str(pred.fact(image, v)) in reached for v in range(len(pred.domain))):
                    found.setdefault(pred.network, set()).add(position[str(image)])
        return {network: sorted(positions) for network, positions in found.items()}

    def _facts(
        self, images: Sequence[Term], concepts: Sequence[int], predicted: dict[str, Sequence[int]] | None
    ) -> list[Term]:
        """Each image has its concept, or, with `predicted`, what network n's predicates see for image i."""
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
        return facts

    def solve(self, goal: Term) -> list[tuple[Term, ...]]:
        """The argument tuples that prove a goal of the program's logic alone (no neural predicate reached)."""
        try:
            with self.grounding(goal):
                return [tuple(args) for args in self._engine.query(self._logic, goal)]
        except ProbLogError as exc:
            raise UserError(f"{self.path}: cannot evaluate {goal}: {exc}") from None

    def answer(
        self,
        query: Term,
        output: Var | None,
        images: Sequence[Term],
        concepts: Sequence[int],
        predicted: dict[str, Sequence[int]] | None = None,
    ) -> Term:
        """The program's unique answer for `output` (for a true/false query, `output` None: TRUE or FALSE)
        when each image has its given concept index, or, with `predicted`, when network n's predicates see
        concept `predicted[n][i]` for image i (what a model with those networks would conclude: how
        shortcuts are checked). An answer that the program's own probabilistic facts leave uncertain is an
        error that says how to sample labels instead.

        Memoised: a dataset asks the same few questions many times.
        """
        seen = tuple(sorted((n, tuple(v)) for n, v in predicted.items())) if predicted else ()
        key = (query, tuple(concepts), seen)
        if key in self._answers:
            return self._answers[key]
        facts = self._facts(images, concepts, predicted)
        given = ", ".join(map(str, facts))
        if self.probabilistic:
            found = self.distribution(query, output, images, concepts, predicted)
            sure = [answer for answer, p in found.items() if p > 1 - 1e-9]
            if not sure:
                odds = ", ".join(f"{a}: {p:.3g}" for a, p in sorted(found.items(), key=lambda item: -item[1]))
                raise UserError(
                    f"{self.path}: the program's answer to {query} given {given} is uncertain ({odds}): its own "
                    "probabilistic facts decide it; set `data.labels: sampled` to draw each query's label from "
                    "this distribution"
                )
            self._answers[key] = sure[0]
            return sure[0]
        db = self._logic.extend()
        for fact in facts:
            db.add_fact(fact)
        try:
            with self.grounding(query):
                proofs = list(self._engine.query(db, query))
        except ProbLogError as exc:
            raise UserError(f"{self.path}: cannot evaluate {query}: {exc}") from None
        if output is None:
            self._answers[key] = TRUE if proofs else FALSE
            return self._answers[key]
        out_index = query.args.index(output)
        found_set = {tuple(args)[out_index] for args in proofs}
        if len(found_set) != 1:
            many = f"proves {len(found_set)} answers ({sorted(map(str, found_set))})"
            raise UserError(
                f"{self.path}: the program {'proves no answer' if not found_set else many} for the query {query} "
                f"given {given}; every query needs exactly one label: check `query.term` in the task and the "
                "program's rules (an answer meant to be random needs a probabilistic fact and "
                "`data.labels: sampled`)"
            )
        self._answers[key] = found_set.pop()
        return self._answers[key]

    def _fixed(self, clause: Term) -> Term:
        """A statement with each learnable `t(p)` at its initial value p (or its learned one, `use_values`), for
        ProbLog's own inference."""

        def value(head: Term) -> Term:
            if not _learned(head):
                return head
            if self._values is None:
                return head.with_probability(Constant(float(head.probability.args[0])))
            return head.with_probability(Constant(self._values[self._parameter[id(head)]]))

        if isinstance(clause, AnnotatedDisjunction):
            return AnnotatedDisjunction([value(h) for h in clause.heads], clause.body)
        if isinstance(clause, Or):
            return Or.from_list([value(h) for h in clause.to_list()])
        if isinstance(clause, Clause):
            return Clause(value(clause.head), clause.body)
        return value(clause)

    def distribution(
        self,
        query: Term,
        output: Var | None,
        images: Sequence[Term],
        concepts: Sequence[int] | None,
        predicted: dict[str, Sequence[int]] | None = None,
    ) -> Distribution:
        """P(answer) by ProbLog's exact inference when each image has its concept (with `predicted`, what
        network n's predicates see), its own probabilistic facts counting at their stated (or initial `t(p)`)
        probabilities; with `concepts` None, every neural predicate is uniform over its domain, which tells
        which answers can occur at all. A true/false query's answers are TRUE and FALSE. Memoised."""
        seen = tuple(sorted((n, tuple(v)) for n, v in predicted.items())) if predicted else ()
        key = (query, None if concepts is None else tuple(concepts), seen)
        if key in self._distributions:
            return self._distributions[key]
        program = SimpleProgram()
        program.add_clause(Clause(Term("_directive"), Term("use_module", Term("library", Term("lists.pl")))))
        for clause in self.clauses:
            if self._neural(clause) is None:
                program.add_statement(self._fixed(clause))
        if concepts is None:
            for image in images:
                for pred in self.neural_predicates:
                    share = Constant(1.0 / len(pred.domain))
                    choices = [pred.fact(image, v).with_probability(share) for v in range(len(pred.domain))]
                    program.add_statement(Or.from_list(choices))
        else:
            for fact in self._facts(images, concepts, predicted):
                program.add_statement(fact)
        program.add_statement(Term("query", query))
        try:
            with self.grounding(query):
                formula = get_evaluatable("sdd").create_from(program, engine=self._engine)
            found = {term: float(p) for term, p in formula.evaluate().items()}
        except ProbLogError as exc:
            raise UserError(f"{self.path}: cannot evaluate {query}: {exc}") from None
        if output is None:
            p = min(1.0, max(0.0, sum(found.values())))
            result = {TRUE: p, FALSE: 1.0 - p}
        else:
            out_index = query.args.index(output)
            result: Distribution = {}
            for term, p in found.items():
                if p > 0:
                    result[term.args[out_index]] = result.get(term.args[out_index], 0.0) + p
        self._distributions[key] = result
        return result
