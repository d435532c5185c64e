"""A query that is a chain of steps over list inputs, composed from the circuit of one step.

Digit-by-digit addition of N-digit numbers has about as many labels as queries, and one label's circuit
grows with N (at N = 8 one label did not compile in 10 minutes on the project's machine). When the task
says how the query decomposes (`engine.chain`: a step predicate over one element of each list input, a
state passed from step to step, one output per step, and a predicate that splits a label into the steps'
outputs and the state after the last step), the engine compiles the step's all-answers circuit once per
state and composes: p(label) = Σ over state sequences s_0 = start, ..., s_N = last of Π_i p(step_i(s_i →
s_i+1) outputs o_i). This is exactly the probability DeepProbLog gives the whole query when the steps read
disjoint images (they do: step i reads element i of each list, so the steps are independent) and every
world gives each step one output and one next state (checked: the step's answers sum to 1), so that state
sequences are disjoint events. Tests compare it with DeepProbLog's ExactEngine on the whole query.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from deepproblog.query import Query
from problog.logic import Constant, Term, Var
from torch import nn

from nesy_gedi.errors import UserError
from nesy_gedi.logic.circuit import Circuit
from nesy_gedi.logic.compiled_engine import CompiledEngine
from nesy_gedi.logic.engine import Leaves
from nesy_gedi.logic.program import Program
from nesy_gedi.logic.query import QueryTemplate


def split_label(program: Program, split: Term, label: Term, length: int) -> tuple[list[str], str]:
    """The steps' outputs and the state after the last step for a label, by the program's split predicate
    (`engine.chain.split`); a label it does not split in exactly one way into `length` outputs is refused."""
    goal = Term(split.functor, label, Constant(length), Var("Outputs"), Var("Last"))
    found = {(args[2], args[3]) for args in program.solve(goal)}
    if len(found) != 1:
        raise UserError(
            f"engine.chain.split: {goal} has {len(found)} answers; it must split every label in exactly one way"
        )
    outputs, last = found.pop()
    items = _list(outputs)
    if len(items) != length:
        raise UserError(f"engine.chain.split: {goal} gives {len(items)} outputs for {length} steps")
    return [str(o) for o in items], str(last)


class ChainEngine(CompiledEngine):
    """The compiled engine for a task with `engine.chain`: `template.step` is the step goal from its start
    state, `split` the split predicate, `order` "last" when the first step reads the lists' last elements."""

    def __init__(
        self,
        program: Program,
        networks: dict[str, nn.Module],
        sources: dict[str, torch.Tensor],
        template: QueryTemplate,
        *,
        split: str,
        order: str = "last",
        cache_dir: Path | None = None,
        semiring: str = "real",
    ) -> None:
        super().__init__(program, networks, sources, template, cache_dir=cache_dir, semiring=semiring)
        self.split = Term.from_string(split)
        self.step_goal = template.step
        self.start = template.step.args[len(template.counts)]
        lengths = set(template.counts.values())
        self.length = lengths.pop()
        placeholders, offset = [], 0
        for count in template.counts.values():
            placeholders.append(template.images[offset : offset + count])
            offset += count
        steps = range(self.length) if order == "first" else range(self.length - 1, -1, -1)
        self.reads = [[str(elements[p]) for elements in placeholders] for p in steps]
        """per step, the placeholder it reads of each list input"""
        self.inputs = [Term(f"step_{j}") for j in range(len(placeholders))]
        self.states: list[str] = []
        self.circuits: list[Circuit] = []
        self.answers: list[list[tuple[str, str, str]]] = []
        """per state: (answer name, output, next state) of its step circuit"""
        self._splits: dict[str, tuple[list[str], str]] = {}
        self._indices: dict[str, tuple[torch.Tensor, int]] = {}
        """per label: which answer of each state's step circuit every step takes, and the last state's index"""
        self._compile_steps()  # a step that is not a function is refused now, before any run starts training

    def _compile_steps(self) -> None:
        """One all-answers step circuit per state reachable from the start, each checked to be a function."""
        if self.states:
            return
        todo, k = [self.start], len(self.inputs)
        while todo:
            state = todo.pop()
            if str(state) in self.states:
                continue
            term = Term(self.step_goal.functor, *self.inputs, state, Var("Out"), Var("Next"))
            circuit, _ = self.program_for(Query(term, output_ind=(k + 1,)), all_answers=True)
            answers = []
            for name in circuit.roots:
                args = Term.from_string(name).args
                answers.append((name, str(args[k + 1]), str(args[k + 2])))
                todo.append(args[k + 2])
            self._check_function(circuit, state)
            self.states.append(str(state))
            self.circuits.append(circuit)
            self.answers.append(answers)

    def _check_function(self, circuit: Circuit, state: Term) -> None:
        """Every world must give the step one output and one next state: its answers' probabilities sum to 1."""
        generator = torch.Generator().manual_seed(0)
        outputs = {
            leaf: torch.randn(4, self.domains[leaf[0]], generator=generator, dtype=torch.float64).softmax(-1)
            for leaf in circuit.leaves()
        }
        params = [p.detach().double() for p in self.program_parameters.each()]
        total = torch.stack(list(circuit.run(outputs, params).values())).sum(0)
        if not torch.allclose(total, torch.ones_like(total)):
            name = f"{self.step_goal.functor}/{self.step_goal.arity}"
            raise UserError(
                f"engine.chain.step: in state {state} the answers of {name} have total probability "
                f"{float(total[(total - 1).abs().argmax()]):.4g} in some world, not 1: every world must give each step "
                "exactly one output and one next state"
            )

    def _split(self, label: Term) -> tuple[list[str], str]:
        """The steps' outputs and the last state for a label, by the program's split predicate."""
        key = str(label)
        if key not in self._splits:
            self._splits[key] = split_label(self.program, self.split, label, self.length)
        return self._splits[key]

    def _label_index(self, label: Term, device: torch.device) -> tuple[torch.Tensor, int]:
        """For a label: per state, step and next state, the row of that state's step table holding the
        label's output there (the table's last row, probability 0, when the step cannot give it); and the
        index of the label's last state. Built once per label, on the run's device, so that a training step
        after the first epoch does no per-digit Python."""
        key = str(label)
        if key not in self._indices:
            outputs, last = self._split(label)
            rows = []
            for answers in self.answers:
                at = {(out, nxt): a for a, (_, out, nxt) in enumerate(answers)}
                rows.append([[at.get((out, nxt), len(at)) for nxt in self.states] for out in outputs])
            states = {state: s for s, state in enumerate(self.states)}
            self._indices[key] = (torch.tensor(rows, device=device), states.get(last, len(self.states)))
        return self._indices[key]

    def _step_outputs(self, leaves: Leaves) -> dict[tuple[str, str], torch.Tensor]:
        """Per (network, step input), its distributions on that input's image of every (query, step),
        query-major, from the leaves of the list elements each step reads."""
        found = {}
        for net, placeholder in sorted({leaf for circuit in self.circuits for leaf in circuit.leaves()}):
            j = int(placeholder.removeprefix("step_"))
            found[(net, placeholder)] = torch.stack([leaves[(net, reads[j])] for reads in self.reads], 1).flatten(0, 1)
        return found

    def _values(self, queries: Sequence[Query]) -> torch.Tensor:
        """p(label) (log p in the log semiring) of each labelled query, step by step."""
        labels = [q.query.args[q.output_ind[0]] for q in queries]
        return self.label_values(self.template_leaves(queries), labels)

    def label_values(self, leaves: Leaves, labels: Sequence[Term]) -> torch.Tensor:
        """p(label) (log p in the log semiring) of each query from the networks' distributions, step by step."""
        self._compile_steps()
        log = self.semiring == "log"
        batch, n, size = len(labels), self.length, len(self.states)
        outputs = self._step_outputs(leaves)
        params = self.program_parameters.each()
        device = next(iter(outputs.values())).device
        indices = [self._label_index(label, device) for label in labels]
        which = torch.stack([rows for rows, _ in indices])  # (batch, states, n, states)
        column = torch.arange(batch * n, device=device).view(batch, n, 1).expand(-1, -1, size)
        moves = []
        for s, circuit in enumerate(self.circuits):
            values = circuit.run({leaf: outputs[leaf] for leaf in circuit.leaves()}, params, self.semiring)
            table = torch.stack(
                [values[name] for name, _, _ in self.answers[s]]
                + [torch.full_like(values[self.answers[s][0][0]], self._zero)]
            )
            moves.append(table[which[:, s], column])
        moves = torch.stack(moves, 2)  # (batch, n, states, states)
        if log:  # a finite floor for impossible moves: a log-sum-exp over nothing but -inf has no gradient
            moves = moves.clamp(min=torch.finfo(moves.dtype).min / 4)
        start = torch.full((batch, size), self._zero, dtype=moves.dtype, device=moves.device)
        start[:, self.states.index(str(self.start))] = 0.0 if log else 1.0
        alpha = start.clamp(min=torch.finfo(moves.dtype).min / 4) if log else start
        for i in range(n):
            step = moves[:, i]
            alpha = (
                torch.logsumexp(alpha.unsqueeze(2) + step, 1) if log else torch.bmm(alpha.unsqueeze(1), step).squeeze(1)
            )
        last = torch.tensor([last for _, last in indices], device=device)
        padded = torch.cat([alpha, torch.full((batch, 1), self._zero, dtype=alpha.dtype, device=alpha.device)], 1)
        return padded[torch.arange(batch, device=alpha.device), last]

    @torch.no_grad()
    def impossible(self, labels: Sequence[Term]) -> list[int]:
        """The positions of labels no world gives (the split worked, but some step cannot output its part, or
        the chain cannot end in its last state): p(label) = 0 when every concept of every image is possible."""
        distinct = list(dict.fromkeys(labels))
        device = next(iter(self.sources.values())).device if self.sources else None
        uniform = {  # float64: a possible label of 1,000 digits has p = 10^-2000 at worst, log p finite
            net: torch.full(
                (len(distinct) * len(read), self.domains[net]),
                1.0 / self.domains[net],
                dtype=torch.float64,
                device=device,
            )
            for net, read in self.template.readers.items()
        }
        values = self.label_values(self.template.leaves(uniform), distinct)
        never = (values < -1e10) if self.semiring == "log" else (values <= 0)
        bad = {str(label) for label, no in zip(distinct, never.tolist(), strict=True) if no}
        return [i for i, label in enumerate(labels) if str(label) in bad]

    @torch.no_grad()
    def predict(self, queries: Sequence[Query]) -> list[Term | None]:
        """Each query's answer under its most probable world: the program's answer when every image has its
        network's most probable value (the most probable answer itself would need all 2·10^N sums)."""
        predicted = {}
        for net in self.template.readers:
            refs = [q.substitution[ph] for q in queries for ph in self.template.images]
            predicted[net] = self.networks[net](self.images(refs)).argmax(-1).view(len(queries), -1).tolist()
        return [
            self.template.label(predicted[next(iter(predicted))][b], {net: v[b] for net, v in predicted.items()})
            for b in range(len(queries))
        ]


def _list(term: Term) -> list[Term]:
    items = []
    while term.functor == "." and term.arity == 2:
        items.append(term.args[0])
        term = term.args[1]
    return items
