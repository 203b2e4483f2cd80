# Copyright (c) monai_jepa contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

import itertools
import math

import numpy as np
import pytest
import torch

from monai_jepa.evaluation import classification_metrics, labels_to_numpy


def pair_count_auc(scores, labels):
    """AUC as the share of (positive, negative) pairs ranked correctly, ties counting one half."""
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_binary_against_hand_counts():
    scores = [0.9, 0.4, 0.4, 0.7, 0.2, 0.6]
    labels = [1, 1, 0, 0, 0, 1]
    out = classification_metrics(scores, labels, "binary")
    # positives {0.9, 0.4, 0.6} vs negatives {0.4, 0.7, 0.2}: 3 + (0.5 + 0 + 1) + (1 + 0 + 1) = 6.5 of 9 pairs
    assert pair_count_auc(scores, labels) == pytest.approx(6.5 / 9)
    assert out["auc"] == pytest.approx(6.5 / 9)
    # predictions at 0.5: [1, 0, 0, 1, 0, 1] -> 4 of 6 right
    assert out["acc"] == pytest.approx(4 / 6)
    assert set(out) == {"acc", "auc"}


def test_binary_score_layouts_and_logits_agree():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=20)
    labels = torch.tensor(np.arange(20) % 2).reshape(20, 1)  # (N, 1) labels, as in MedMNIST
    probs = 1 / (1 + np.exp(-logits))
    ref = classification_metrics(probs, labels, "binary")
    assert ref["auc"] == pytest.approx(pair_count_auc(probs, labels.flatten().tolist()))
    for scores, kwargs in [
        (probs[:, None], {}),
        (np.stack([1 - probs, probs], 1), {}),
        (torch.tensor(logits), {"from_logits": True}),
        (np.stack([np.zeros(20), logits], 1), {"from_logits": True}),  # softmax of [0, l] = sigmoid(l)
    ]:
        out = classification_metrics(scores, labels, "binary", **kwargs)
        assert out["auc"] == pytest.approx(ref["auc"]) and out["acc"] == pytest.approx(ref["acc"])


def test_binary_with_one_class_has_nan_auc():
    out = classification_metrics([0.2, 0.8], [1, 1], "binary")
    assert math.isnan(out["auc"]) and out["acc"] == 0.5


def test_multiclass_macro_one_vs_rest():
    scores = np.array(
        [[0.7, 0.2, 0.1], [0.3, 0.4, 0.3], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6], [0.5, 0.1, 0.4], [0.1, 0.3, 0.6]]
    )
    labels = [0, 0, 1, 1, 2, 2]
    out = classification_metrics(scores, labels, "multiclass")
    per_class = [pair_count_auc(scores[:, c], [int(y == c) for y in labels]) for c in range(3)]
    # class 0: positives {0.7, 0.3} vs negatives {0.1, 0.2, 0.5, 0.1}: 4 + 3 = 7 of 8
    assert per_class[0] == pytest.approx(7 / 8)
    assert out["auc"] == pytest.approx(np.mean(per_class))
    # arg-max predictions [0, 1, 1, 2, 0, 2] against [0, 0, 1, 1, 2, 2] -> 3 of 6 right
    assert out["acc"] == pytest.approx(3 / 6)
    assert "qwk" not in out and "skipped_classes" not in out


def test_multiclass_skips_absent_classes():
    scores = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.3, 0.6, 0.1]])
    out = classification_metrics(scores, [0, 1, 0, 1], "multiclass")  # class 2 absent from the labels
    assert out["skipped_classes"] == [2]
    expected = np.mean([pair_count_auc(scores[:, c], [1 - (c ^ y) for y in [0, 1, 0, 1]]) for c in (0, 1)])
    assert out["auc"] == pytest.approx(expected) and out["auc"] == 1.0


def test_ordinal_quadratic_weighted_kappa_by_formula():
    labels = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 2, 2, 0])
    scores = np.eye(3)[pred] * 0.8 + 0.2 / 3
    out = classification_metrics(scores, labels, "ordinal")
    k = 3
    observed = np.zeros((k, k))
    for t, p in zip(labels, pred):
        observed[t, p] += 1
    expected = np.outer(observed.sum(1), observed.sum(0)) / observed.sum()
    weights = np.array([[(i - j) ** 2 / (k - 1) ** 2 for j in range(k)] for i in range(k)])
    kappa = 1 - (weights * observed).sum() / (weights * expected).sum()
    # O = [[1,1,0],[0,1,1],[1,0,1]], E = 2/3 everywhere: 1 - (1/4 + 1/4 + 1) / (2/3 * 3) = 0.25
    assert kappa == pytest.approx(0.25)
    assert out["qwk"] == pytest.approx(0.25)
    assert out["acc"] == pytest.approx(3 / 6)
    per_class = [pair_count_auc(scores[:, c], (labels == c).astype(int)) for c in range(k)]
    assert out["auc"] == pytest.approx(np.mean(per_class))


def test_multilabel_per_class_macro_and_skipped():
    scores = np.array([[0.9, 0.2, 0.1], [0.3, 0.8, 0.6], [0.6, 0.4, 0.2], [0.1, 0.7, 0.3]])
    labels = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])  # class 2: one value only -> skipped
    out = classification_metrics(scores, labels, "multilabel")
    auc0 = pair_count_auc(scores[:, 0], labels[:, 0])  # {0.9, 0.6} vs {0.3, 0.1}: 1.0
    auc1 = pair_count_auc(scores[:, 1], labels[:, 1])  # {0.8, 0.4} vs {0.2, 0.7}: (1 + 1 + 1 + 0) / 4
    assert (auc0, auc1) == (1.0, 0.75)
    assert out["per_class_auc"] == [pytest.approx(1.0), pytest.approx(0.75), None]
    assert out["skipped_classes"] == [2]
    assert out["macro_auc"] == pytest.approx(0.875) and out["auc"] == out["macro_auc"]
    # thresholded at 0.5: 9 of the 12 entries are right (errors: [1, 2] at 0.6, [2, 1] at 0.4, [3, 1] at 0.7)
    assert out["acc"] == pytest.approx(9 / 12)


def test_labels_to_numpy_layouts():
    assert labels_to_numpy(torch.tensor([[1], [0]]), "binary").tolist() == [1, 0]
    assert labels_to_numpy([[0, 1], [1, 1]], "multilabel").shape == (2, 2)
    with pytest.raises(ValueError, match="multilabel labels must have shape"):
        labels_to_numpy([0, 1], "multilabel")
    with pytest.raises(ValueError, match="integer class indices"):
        labels_to_numpy([0.5, 1.0], "multiclass")


def test_invalid_inputs():
    with pytest.raises(ValueError, match="regression"):
        classification_metrics([0.1], [0], "regression")
    with pytest.raises(ValueError, match="same length"):
        classification_metrics([0.1, 0.2], [0], "binary")
    with pytest.raises(ValueError, match="binary labels must be 0 or 1"):
        classification_metrics([0.1, 0.2], [0, 2], "binary")
    with pytest.raises(ValueError, match=r"must lie in \[0, 2\)"):
        classification_metrics([[0.5, 0.5]], [2], "multiclass")
    with pytest.raises(ValueError, match="NaN"):
        classification_metrics([0.1, float("nan")], [0, 1], "binary")
    with pytest.raises(ValueError, match="at least one sample"):
        classification_metrics(np.zeros(0), np.zeros(0, dtype=int), "binary")
