"""Queries from the user's own files: per example, the image of each query input and the label.

A file is CSV (a header row, then one row per query) or JSON Lines (one object per line), by its
extension (`.csv`; `.jsonl` or `.json`). Each query input variable of `query.inputs` is a column (key)
naming its image by index into its source's split (training file: the training images; test and OOD
files: the test images); an input of N images takes N indices, space-separated in CSV or a JSON list.
`label` is the label: a value of the query's output (`7`), or `true` / `false` for a true/false query.

```csv
A,B,label
0,1,7
2,3,12
```
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
from problog.errors import ProbLogError
from problog.logic import Term

from nesy_gedi.data.queries import Position, QuerySet
from nesy_gedi.errors import UserError

LABEL = "label"


def _rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, row as a mapping) for every example of a CSV or JSON Lines file."""
    try:
        text = path.read_bytes().decode("utf-8-sig")  # -sig: a byte-order mark (Excel's "CSV UTF-8") is not text
    except FileNotFoundError:
        raise UserError(f"{path}: query file not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory; name a query file (.csv or .jsonl)") from None
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path}: not a text file (byte {exc.start} is not UTF-8); a query file is CSV or JSONL"
        ) from None
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        for row in reader:
            if None in row or None in row.values():
                raise UserError(f"{path}:{reader.line_num}: this row has another number of fields than the header")
            yield reader.line_num, row
    elif path.suffix.lower() in (".jsonl", ".json"):
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{number}: not valid JSON: {exc.msg}") from None
            if not isinstance(row, dict):
                raise UserError(f'{path}:{number}: a line must be a JSON object, e.g. {{"A": 0, "B": 1, "label": 7}}')
            yield number, row
    else:
        raise UserError(f"{path}: a query file is .csv or .jsonl (JSON Lines), not '{path.suffix}'")


def _indices(value: object, count: int, where: str, key: str) -> list[int]:
    """A query input's image indices: one whole number, or `count` of them."""
    items = value.split() if isinstance(value, str) else value if isinstance(value, list) else [value]
    found = [
        item if isinstance(item, int) and not isinstance(item, bool) else int(item) if _whole(item) else None
        for item in items
    ]
    if None in found or len(found) != count:
        raise UserError(
            f"{where}: '{key}' needs {count} whole-number image ind{'ex' if count == 1 else 'ices'}, got {value!r}"
        )
    return found


def _whole(item: object) -> bool:
    return isinstance(item, str) and item.lstrip("-").isdigit()


def read_query_file(
    path: str | Path,
    split: str,
    counts: Mapping[str, int],
    positions: Sequence[Position],
    labels: set[str] | Callable[[Term], str | None],
    boolean: bool,
) -> QuerySet:
    """The queries of one file, checked row by row: every input present (`counts`: images per input) with
    image indices that exist in its position's source, and a label the program can give: one of `labels`,
    or one for which `labels(label)` finds nothing wrong (it returns why the program cannot give it)."""
    path = Path(path)
    rows, found = [], []
    for number, row in _rows(path):
        where = f"{path}:{number}"
        missing = [key for key in [*counts, LABEL] if key not in row]
        extra = sorted(set(row) - {*counts, LABEL})
        if missing or extra:
            raise UserError(
                f"{where}: expected the keys {', '.join([*counts, LABEL])} (one per query input, and the label); "
                + (f"missing {', '.join(missing)}" if missing else f"unknown {', '.join(extra)}")
            )
        images = [i for name, count in counts.items() for i in _indices(row[name], count, where, name)]
        for i, position in zip(images, positions, strict=True):
            if not 0 <= i < len(position.labels):
                raise UserError(
                    f"{where}: image index {i} does not exist: {position.tensor} has {len(position.labels)} images"
                )
        text = str(row[LABEL]).strip()
        text = text.lower() if boolean else text
        try:
            label = Term.from_string(text)
        except ProbLogError:
            label = None
        wrong = _wrong_label(label, labels)
        if wrong:
            raise UserError(f"{where}: label {row[LABEL]!r} {wrong}")
        rows.append(images)
        found.append(label)
    if not rows:
        raise UserError(f"{path}: no queries in the file")
    indices = np.array(rows, dtype=np.int64).reshape(len(rows), -1)
    concepts = np.stack([pos.concepts(indices[:, p]) for p, pos in enumerate(positions)], 1)
    return QuerySet(split, tuple(p.tensor for p in positions), indices, concepts, found)


def _wrong_label(label: Term | None, labels: set[str] | Callable[[Term], str | None]) -> str | None:
    """Why the program cannot give `label` (None: it can)."""
    if label is not None and callable(labels):
        return labels(label)
    if label is not None and str(label) in labels:
        return None
    shown = sorted(labels, key=lambda v: (len(v), v)) if not callable(labels) else []
    listed = ", ".join(shown[:20]) + (", ..." if len(shown) > 20 else "")
    return "is not an answer the program can give" + (f" (it gives {listed})" if shown else "")
