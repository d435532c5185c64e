"""DeepProbLog's own ExactEngine behind the engine protocol: one SDD per query, solved query by query by
ProbLog. Slow, but DeepProbLog's semantics by construction: the oracle the other engines are tested against."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from deepproblog.query import Query
from problog.logic import Constant, Term

from nesy_gedi.logic.engine import LEAVES, LOSS_FLOOR, Engine, Leaves, quiet_deepproblog
from nesy_gedi.logic.program import FALSE, TRUE


class DeepProbLogEngine(Engine):
    """Exact inference with DeepProbLog 2.1: one SDD per query template, cached in memory. The networks'
    distributions come in as leaves (`log_likelihood`), or are computed once per batch from the queries'
    images (`probabilities`); ProbLog reads them through the model's lookup networks."""

    def _read(self, shape: Term, placeholders: list[Term]) -> dict[str, list[int]]:
        """Which placeholders of a query shape each network reads (grounded once per shape)."""
        if shape not in self._readers:
            self._readers[shape] = self.program.readers(shape, placeholders)
        return self._readers[shape]

    def query_leaves(self, queries: Sequence[Query]) -> tuple[list[Query], dict[str, torch.Tensor]]:
        """The queries with each image replaced by a row of the networks' output tables, and the tables:
        each network called once on every image it reads in the batch."""
        refs: dict[str, list[Term]] = {}
        rows: dict[str, list[int]] = {}
        rewritten, total = [], 0
        for q in queries:
            placeholders = list(q.substitution)
            read = self._read(q.variable_output().query, placeholders)
            substitution = {}
            for p, ph in enumerate(placeholders):
                substitution[ph] = Term("tensor", Term(LEAVES, Constant(total)))
                for net, positions in read.items():
                    if p in positions:
                        refs.setdefault(net, []).append(q.substitution[ph])
                        rows.setdefault(net, []).append(total)
                total += 1
            rewritten.append(Query(q.query, substitution, p=q.p, output_ind=q.output_ind))
        tables = {}
        for net, images in refs.items():
            out = self.distributions(net, images)
            index = torch.tensor(rows[net], device=out.device)
            tables[net] = out.new_zeros(total, out.shape[-1]).index_copy(0, index, out)
        return rewritten, tables

    def solve(self, queries: Sequence[Query]) -> list:
        """DeepProbLog's results for these queries (every answer of a query with an open output), each
        answer with its images as the query named them."""
        rewritten, tables = self.query_leaves(queries)
        results = self._solve(rewritten, tables)
        for result, ours, theirs in zip(results, rewritten, queries, strict=True):
            back = {ours.substitution[ph]: theirs.substitution[ph] for ph in theirs.substitution}
            result.result = {answer.apply_term(back): p for answer, p in result.result.items()}
        return results

    def _solve(self, queries: Sequence[Query], tables: dict[str, torch.Tensor]) -> list:
        self._tables.clear()
        self._tables.update(tables)
        self._parameters_now[:] = self.program_parameters.each()
        try:
            with quiet_deepproblog(), self.grounding(queries[0].query if queries else Term("none")):
                return self.model.solve(queries)
        finally:
            self._tables.clear()
            self._parameters_now.clear()

    def _probabilities(self, queries: Sequence[Query], tables: dict[str, torch.Tensor]) -> torch.Tensor:
        results = self._solve(queries, tables)
        # a query the program cannot prove has no entry: probability 0, as in DeepProbLog's own loss
        probs = [r.result.get(q.substitute().query, 0.0) for r, q in zip(results, queries, strict=True)]
        return torch.stack([torch.as_tensor(p, dtype=torch.get_default_dtype()) for p in probs])

    def probabilities(self, queries: Sequence[Query]) -> torch.Tensor:
        return self._probabilities(*self.query_leaves(queries))

    def log_likelihood(self, leaves: Leaves, labels: Sequence[Term]) -> torch.Tensor:
        """As `log_probabilities` takes it: each query rewritten to read rows of the leaves, solved by ProbLog."""
        assert self.template is not None, "log_likelihood needs the engine's query template"
        template, batch = self.template, len(labels)
        count = len(template.images)
        tables = {}
        for (net, ph), values in leaves.items():
            if net not in tables:
                tables[net] = values.new_zeros(batch, count, values.shape[-1])
            where = torch.tensor([template.position[ph]], device=values.device)
            tables[net] = tables[net].index_copy(1, where, values.unsqueeze(1))
        queries = [  # image p of query b is row b * count + p of every network's table
            template.with_label(
                {ph: Term("tensor", Term(LEAVES, Constant(b * count + p))) for p, ph in enumerate(template.images)},
                label,
            )
            for b, label in enumerate(labels)
        ]
        flat = {net: table.reshape(batch * count, -1) for net, table in tables.items()}
        return torch.log(self._probabilities(queries, flat).clamp(min=0.0) + LOSS_FLOOR)

    @torch.no_grad()
    def predict(self, queries: Sequence[Query]) -> list[Term | None]:
        if queries and not queries[0].output_ind:
            return [TRUE if float(p) > 0.5 else FALSE for p in self.probabilities(queries)]
        results = self.solve([q.variable_output() for q in queries])
        answers: list[Term | None] = []
        for r, q in zip(results, queries, strict=True):
            if not r.result:
                answers.append(None)
                continue
            best = max(r.result, key=lambda term: float(r.result[term]))
            answers.append(best.args[q.output_ind[0]])
        return answers
