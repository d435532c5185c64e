"""How well a trained model answers its queries, and whether its symbols mean what they should.

Task accuracy asks the program (through the engine) for its most probable answer to each test query.
Concept metrics ask the network alone, on every test image, with no relabelling of its outputs.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import confusion_matrix, normalized_mutual_info_score, roc_auc_score
from sklearn.metrics.cluster import contingency_matrix
from tqdm import tqdm

from nesy_gedi.data.queries import QuerySet
from nesy_gedi.logic.deepproblog_engine import DeepProbLogEngine
from nesy_gedi.logic.query import QueryTemplate


def task_accuracy(engine: DeepProbLogEngine, template: QueryTemplate, test_set: QuerySet, batch_size: int) -> float:
    """Fraction of test queries whose most probable answer is the label."""
    engine.eval()
    correct = 0
    for start in tqdm(
        range(0, len(test_set), batch_size), desc="test queries", unit="batch", dynamic_ncols=True, mininterval=1.0
    ):
        rows = range(start, min(start + batch_size, len(test_set)))
        queries = [template.query(test_set.source, test_set.indices[r], test_set.labels[r]) for r in rows]
        answers = engine.predict(queries)
        correct += sum(a == test_set.labels[r] for a, r in zip(answers, rows, strict=True))
    return correct / len(test_set)


@torch.no_grad()
def batched_logits(network: torch.nn.Module, inputs: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """The network's logits for every input, in eval mode, on the CPU."""
    network.eval()
    return torch.cat([network(inputs[i : i + batch_size]).cpu() for i in range(0, len(inputs), batch_size)])


def predict_concepts(network: torch.nn.Module, images: torch.Tensor, batch_size: int = 1000) -> np.ndarray:
    """The network's most probable concept index for each image."""
    return batched_logits(network, images, batch_size).argmax(-1).numpy()


def cluster_metrics(predicted: np.ndarray, true: np.ndarray) -> dict:
    """Clustering quality, blind to cluster names: NMI, and accuracy under the best one-to-one matching."""
    table = contingency_matrix(true, predicted)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return {
        "nmi": float(normalized_mutual_info_score(true, predicted)),
        "cluster_accuracy": float(table[rows, cols].sum() / len(true)),
        "cluster_sizes": np.bincount(predicted).tolist(),
    }


def ood_auroc(score_in: torch.Tensor, score_out: torch.Tensor) -> float:
    """AUROC of telling in-distribution inputs (higher score) from out-of-distribution ones."""
    labels = np.r_[np.ones(len(score_in)), np.zeros(len(score_out))]
    return float(roc_auc_score(labels, torch.cat([score_in, score_out]).numpy()))


def concept_metrics(predicted: np.ndarray, true: np.ndarray, n_concepts: int) -> dict:
    """Accuracy (prediction index == true concept index), NMI, and the confusion matrix (rows: true)."""
    labels = list(range(n_concepts))
    return {
        "concept_accuracy": float(np.mean(predicted == true)),
        "nmi": float(normalized_mutual_info_score(true, predicted)),
        "confusion": confusion_matrix(true, predicted, labels=labels).tolist(),
    }
