"""One markdown table of grounding rates over `nesy-gedi compare` folders of one task: per method (named as
`compare` names it, e.g. `gedi-pretrained[gedi-nogen]`), the run classes, which shortcut each shortcut run
learned, the per-seed pretraining's cluster quality, and the time with the pretraining included.

Run: .venv/bin/python bench/rates_table.py TASK.yaml COMPARE_FOLDER...
A run's learned map (its concept map: each true digit's most predicted value) is checked against the maps
`nesy-gedi shortcuts` lists for the task: `on a listed shortcut` counts the shortcut runs that learned one
of them exactly, `bijective` those that learned a bijective one. `rival` counts the runs whose naming
reported a bijective-shortcut rival. Seconds per run: training + evaluation + the run's own pretraining
(counted in every run that uses it, as `compare` does); the total adds each distinct pretraining once.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from nesy_gedi.analysis.shortcuts import find_shortcuts, training_combinations
from nesy_gedi.assembly.task import load_task, task_logic
from nesy_gedi.commands.compare import label, run_seconds


def learned_maps(task: str) -> tuple[set[tuple], set[tuple], list[int]]:
    """Every shortcut map of the task, the bijective ones (tuples over the trained values) and those values."""
    config = load_task(task)
    program, template, sizes = task_logic(config)
    found = find_shortcuts(program, template, sizes, training_combinations(template, sizes, config.data.combinations))
    first = sorted(sizes)[0]
    return {m[first] for m in found.maps}, {m[first] for m in found.bijective}, found.values


def _median(values: list[float]) -> str:
    if not values:
        return "–"
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return f"{med:.3f} [{q1:.3f}–{q3:.3f}]"


def rows(task: str, folders: list[Path]) -> list[str]:
    maps, bijective, values = learned_maps(task)
    methods: dict[tuple[Path, str], list[dict]] = {}  # per compare folder and method: its runs
    for folder in folders:
        for path in sorted(folder.glob("*-seed*/metrics.json")):
            metrics = json.loads(path.read_text())
            methods.setdefault((folder, path.parent.name.rsplit("-seed", 1)[0]), []).append(metrics)
    out = []
    for (_, method), runs in methods.items():
        runs.sort(key=lambda r: r["seed"])
        done = [r for r in runs if r.get("status") == "finished"]
        classes = [r["grounding"] for r in done]
        concept_maps = []
        for r in done:
            found = r["id"]["concepts"][next(iter(r["id"]["concepts"]))]["concept_map"]
            concept_maps.append(tuple(found[str(v)] for v in values))
        shortcut_maps = [m for m, c in zip(concept_maps, classes, strict=True) if c == "shortcut"]
        listed = sum(m in maps for m in shortcut_maps)
        bij = sum(m in bijective for m in shortcut_maps)
        rivals = sum(any(x.get("bijective_shortcut") for x in r.get("naming", {}).get("rivals", [])) for r in done)
        pre = [p for r in done for p in r.get("pretraining", {}).values()]
        nmi = [p["nmi"] for p in pre if "nmi" in p]
        seconds = [run_seconds(r) for r in done]
        distinct = {p["folder"]: p["train_seconds"] for p in pre}
        total = sum(r["train_seconds"] + r.get("eval_seconds", 0) for r in done) + sum(distinct.values())
        per_seed = ", ".join(f"{r['concept_accuracy']:.2f}" for r in done)
        cells = [
            label(method, done),
            f"{len(done)}/{len(runs)}",
            str(classes.count("grounded")),
            str(classes.count("grounded with labels")),
            f"{classes.count('shortcut')} ({listed} / {bij})",
            str(classes.count("failed")),
            _median([r["task_accuracy"] for r in done]),
            _median([r["concept_accuracy"] for r in done]),
            per_seed,
            _median([r["ood_task_accuracy"] for r in done if "ood_task_accuracy" in r]),
            _median([r["ood_concept_accuracy"] for r in done if "ood_concept_accuracy" in r]),
            f"{np.median(nmi):.3f} (min {min(nmi):.3f})" if nmi else "–",
            str(rivals) if pre else "–",
            f"{np.median(seconds):.0f}" if seconds else "–",
            f"{total / 60:.0f}",
        ]
        out.append("| " + " | ".join(cells) + " |")
    return out


HEADER = (
    "| method | finished | grounded | grounded with labels | shortcut (on a listed map / bijective) | failed | "
    "Acc(Y) | Acc(C) | Acc(C) per seed | OOD Acc(Y) | OOD Acc(C) | pretraining NMI | bijective rival reported | "
    "s per run | total min |"
)

if __name__ == "__main__":
    print(HEADER)
    print("|---" * 15 + "|")
    print("\n".join(rows(sys.argv[1], [Path(f) for f in sys.argv[2:]])))
