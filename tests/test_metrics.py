"""Concept-quality metrics on hand-computed cases: perfect, permuted and collapsed predictors."""

from __future__ import annotations

import numpy as np
import pytest

from nesy_gedi.analysis.metrics import classify, concept_metrics, expected_calibration_error


def one_hot(predicted: list[int], n: int, confidence: float = 1.0) -> np.ndarray:
    """Distributions with `confidence` on the prediction and the rest spread evenly."""
    probs = np.full((len(predicted), n), (1 - confidence) / (n - 1))
    probs[np.arange(len(predicted)), predicted] = confidence
    return probs


TRUE = np.array([0, 0, 1, 1, 2, 2, 3, 3])


def test_a_perfect_predictor():
    m = concept_metrics(one_hot(TRUE.tolist(), 4), TRUE)
    assert m["concept_accuracy"] == m["f1_c"] == m["nmi"] == m["matched_concept_accuracy"] == 1
    assert m["cls_hard"] == m["cls_soft"] == 0 and m["ece_c"] == 0
    assert m["entropy_c"] == pytest.approx(0, abs=1e-9)
    assert m["concept_map"] == {"0": 0, "1": 1, "2": 2, "3": 3}


def test_a_permuted_predictor_is_clean_but_wrong():
    """d -> (d + 2) mod 4: no collapse, perfect clusters, every concept wrong (EvenOdd's shortcut in small)."""
    m = concept_metrics(one_hot(((TRUE + 2) % 4).tolist(), 4), TRUE)
    assert m["concept_accuracy"] == 0 and m["f1_c"] == 0
    assert m["nmi"] == pytest.approx(1) and m["matched_concept_accuracy"] == 1
    assert m["cls_hard"] == 0 and m["cls_soft"] == 0
    assert m["ece_c"] == pytest.approx(1)  # confident and always wrong
    assert m["concept_map"] == {"0": 2, "1": 3, "2": 0, "3": 1}
    assert np.array_equal(np.array(m["confusion"]), np.roll(np.eye(4, dtype=int) * 2, 2, axis=1))


def test_a_fully_collapsed_predictor():
    m = concept_metrics(one_hot([1] * 8, 4), TRUE)
    assert m["concept_accuracy"] == 0.25  # right only on the true 1s
    assert m["cls_hard"] == 0.75 and m["cls_soft"] == 0.75  # 3 of 4 values never predicted
    assert m["nmi"] == pytest.approx(0, abs=1e-12)
    assert m["f1_c"] == pytest.approx((2 * 0.25 * 1 / 1.25) / 4)  # class 1: precision 1/4, recall 1
    assert m["concept_map"] == {"0": 1, "1": 1, "2": 1, "3": 1}


def test_hard_and_soft_collapse_differ_as_published():
    """One stray prediction of value 3 counts as coverage in the hard variant, barely in the soft one."""
    true = np.array([0] * 10 + [1] * 10)
    predicted = [0] * 9 + [3] + [1] * 10
    m = concept_metrics(one_hot(predicted, 4), true)
    assert m["cls_hard"] == pytest.approx(1 - 3 / 4)  # values 0, 1, 3 predicted
    assert m["cls_soft"] == pytest.approx(1 - (0.9 + 1 + 0 + 0.1) / 4)


def test_calibration_error_by_hand():
    # two bins: confidence 0.9 (right 2 of 2) and 0.6 (right 1 of 2): |1 - 0.9|/2 + |0.5 - 0.6|/2
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    assert expected_calibration_error(probs, np.array([0, 0, 0, 1])) == pytest.approx(0.1)


def test_entropy_of_uniform_predictions_is_one():
    assert concept_metrics(np.full((8, 4), 0.25), TRUE)["entropy_c"] == pytest.approx(1)


@pytest.mark.parametrize(
    "acc_y, acc_c, expected",
    [(0.99, 0.95, "grounded"), (0.99, 0.01, "shortcut"), (0.5, 0.2, "failed"), (0.5, 0.95, "grounded")],
)
def test_runs_are_classified_by_the_thresholds(acc_y, acc_c, expected):
    assert classify(acc_y, {"net": acc_c}, 0.9, 0.9) == expected


def test_a_run_whose_naming_used_labels_is_never_counted_as_unsupervised():
    assert classify(0.99, {"net": 0.95}, 0.9, 0.9, labelled=True) == "grounded with labels"
    assert classify(0.99, {"net": 0.01}, 0.9, 0.9, labelled=True) == "shortcut"


def test_a_task_is_grounded_only_when_every_network_is():
    # digits read right beside garments read wrong: the mean (0.90) reaches the threshold, the garments do not
    assert classify(0.99, {"digit_net": 0.97, "item_net": 0.83}, 0.9, 0.9) == "shortcut"
    assert classify(0.99, {"digit_net": 0.97, "item_net": 0.93}, 0.9, 0.9) == "grounded"
