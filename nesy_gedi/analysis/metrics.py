"""How well a trained model answers its queries, and whether its symbols mean what they should.

Task accuracy asks the program (through the engine) for its most probable answer to each test query.
Concept metrics ask the network alone, on every image of the test queries, with no relabelling of its
outputs. Definitions follow `SHORTCUTS.md` §3 (rsbench, NeSyDM); each variant is named.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import confusion_matrix, f1_score, normalized_mutual_info_score, roc_auc_score
from sklearn.metrics.cluster import contingency_matrix

from nesy_gedi.data.queries import QuerySet
from nesy_gedi.logic.engine import Engine
from nesy_gedi.logic.query import QueryTemplate
from nesy_gedi.progress import bar as progress_bar


def answer_metrics(engine: Engine, template: QueryTemplate, queries: QuerySet, batch_size: int) -> dict:
    """Acc(Y): share of queries whose most probable answer is the label (no masking of answers);
    macro-F1(Y) over the label values that occur."""
    engine.eval()
    answers: list[str] = []
    for start in progress_bar(
        range(0, len(queries), batch_size), desc="test queries", unit="batch", dynamic_ncols=True, mininterval=1.0
    ):
        rows = range(start, min(start + batch_size, len(queries)))
        batch = [template.query(queries.tensors, queries.indices[r], queries.labels[r]) for r in rows]
        answers += [str(a) for a in engine.predict(batch)]
    true = [str(label) for label in queries.labels]
    return {
        "acc_y": float(np.mean([a == t for a, t in zip(answers, true, strict=True)])),
        "f1_y": float(f1_score(true, answers, average="macro")),
    }


@torch.no_grad()
def batched_logits(network: torch.nn.Module, inputs: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """The network's logits for every input, in eval mode, on the CPU."""
    network.eval()
    return torch.cat([network(inputs[i : i + batch_size]).cpu() for i in range(0, len(inputs), batch_size)])


def concept_probabilities(network: torch.nn.Module, images: torch.Tensor, batch_size: int = 1000) -> np.ndarray:
    """The network's distribution over its concepts for each image (what the neural predicate reads)."""
    return torch.softmax(batched_logits(network, images, batch_size), -1).numpy()


def matched_accuracy(table: np.ndarray) -> float:
    """Accuracy under the best one-to-one matching of predictions to labels (Hungarian), from a table of
    counts with one row per true label and one column per prediction."""
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def cluster_metrics(predicted: np.ndarray, true: np.ndarray) -> dict:
    """Clustering quality, blind to cluster names: NMI, and accuracy under the best one-to-one matching."""
    table = contingency_matrix(true, predicted)
    return {
        "nmi": float(normalized_mutual_info_score(true, predicted)),
        "cluster_accuracy": matched_accuracy(table),
        "cluster_sizes": np.bincount(predicted).tolist(),
    }


def ood_auroc(score_in: torch.Tensor, score_out: torch.Tensor) -> float:
    """AUROC of telling in-distribution inputs (higher score) from out-of-distribution ones."""
    labels = np.r_[np.ones(len(score_in)), np.zeros(len(score_out))]
    return float(roc_auc_score(labels, torch.cat([score_in, score_out]).numpy()))


def concept_metrics(probabilities: np.ndarray, true: np.ndarray) -> dict:
    """Concept quality of one network on flattened concept slots (SHORTCUTS.md §3), with no relabelling
    except where named: accuracy and macro-F1, the confusion matrix (rows: true), collapse in rsbench's two
    variants (`cls_hard`: share of concept values never predicted; `cls_soft`: the same on the
    row-normalised matrix), calibration (ECE, 10 equal-width bins), mean normalised entropy, NMI,
    Hungarian-matched accuracy (the gap to `concept_accuracy` is the grounding error) and the learned map
    (each true concept's most frequent prediction)."""
    n_concepts = probabilities.shape[-1]
    predicted = probabilities.argmax(-1)
    confusion = confusion_matrix(true, predicted, labels=list(range(n_concepts)))
    counts = confusion.sum(1, keepdims=True)
    row_normalised = np.divide(confusion, counts, out=np.zeros(confusion.shape), where=counts > 0)
    return {
        "concept_accuracy": float(np.mean(predicted == true)),
        "f1_c": float(f1_score(true, predicted, average="macro")),
        "cls_hard": float(1 - np.minimum(1, confusion.max(0)).mean()),
        "cls_soft": float(1 - np.minimum(1, row_normalised.max(0)).mean()),
        "ece_c": expected_calibration_error(probabilities, true),
        "entropy_c": float(np.mean(-(probabilities * np.log(probabilities + 1e-12)).sum(-1)) / np.log(n_concepts)),
        "nmi": float(normalized_mutual_info_score(true, predicted)),
        "matched_concept_accuracy": matched_accuracy(confusion),
        "concept_map": {str(i): int(confusion[i].argmax()) for i in range(n_concepts) if counts[i, 0] > 0},
        "confusion": confusion.tolist(),
    }


def expected_calibration_error(probabilities: np.ndarray, true: np.ndarray, bins: int = 10) -> float:
    """Σ_b |B_b|/n · |accuracy(B_b) − confidence(B_b)| over equal-width bins of the top probability."""
    confidence = probabilities.max(-1)
    correct = probabilities.argmax(-1) == true
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    return float(
        sum(
            abs(correct[which == b].mean() - confidence[which == b].mean()) * np.mean(which == b)
            for b in range(bins)
            if np.any(which == b)
        )
    )


def classify(
    task_accuracy: float,
    concept_accuracy: dict[str, float],
    grounded_at: float,
    task_at: float,
    labelled: bool = False,
) -> str:
    """grounded (the Acc(C) of every network, `concept_accuracy` by network, ≥ grounded_at, so a task is not
    called grounded while one of its networks reads a wrong meaning; `grounded with labels` when labelled
    images chose the naming or trained the network, so it never counts as unsupervised), else shortcut
    (Acc(Y) ≥ task_at), else failed."""
    if min(concept_accuracy.values()) >= grounded_at:
        return "grounded with labels" if labelled else "grounded"
    return "shortcut" if task_accuracy >= task_at else "failed"


def split_metrics(
    engine: Engine,
    template: QueryTemplate,
    queries: QuerySet,
    networks: dict[str, torch.nn.Module],
    tensors: dict[str, torch.Tensor],
    readers: dict[str, list[int]],
    batch_size: int,
) -> dict:
    """Answer and concept metrics of one evaluation split: every network on the flattened images it reads
    in the split's queries (images whose class lies outside a network's domain are left out for it)."""
    result = answer_metrics(engine, template, queries, batch_size)
    per_network = {}
    for name, network in networks.items():
        read = readers[name]
        concepts = queries.concepts[:, read].ravel()
        probabilities = concept_probabilities(network, queries.images(tensors, read))
        keep = (concepts >= 0) & (concepts < probabilities.shape[-1])
        per_network[name] = concept_metrics(probabilities[keep], concepts[keep])
    result["concept_accuracy"] = float(np.mean([m["concept_accuracy"] for m in per_network.values()]))
    result["nmi"] = float(np.mean([m["nmi"] for m in per_network.values()]))
    result["concepts"] = per_network
    return result
