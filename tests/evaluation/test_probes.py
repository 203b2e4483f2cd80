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

import numpy as np
import pytest
import torch

from monai_jepa.evaluation import DEFAULT_C_GRID, classification_metrics, knn_probe, linear_probe, standardize


def gaussian_classes(n, num_classes=2, dim=16, shift=3.0, seed=0):
    """Class c is a unit Gaussian centred at shift * e_c: linearly separable with a wide margin."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % num_classes
    x = rng.normal(size=(n, dim))
    x[np.arange(n), y] += shift
    return x.astype(np.float32), y


@pytest.mark.parametrize("probe", [linear_probe, knn_probe])
def test_separable_binary_problem_is_learned(probe):
    xtr, ytr = gaussian_classes(120, seed=0)
    xte, yte = gaussian_classes(200, seed=1)
    out = probe(torch.from_numpy(xtr), torch.from_numpy(ytr), xte, yte, "binary")
    assert out["auc"] > 0.95 and out["acc"] > 0.9
    assert out["scores"].shape == (200,) and ((out["scores"] >= 0) & (out["scores"] <= 1)).all()
    assert out["auc"] == pytest.approx(classification_metrics(out["scores"], yte, "binary")["auc"])


@pytest.mark.parametrize("probe", [linear_probe, knn_probe])
def test_random_labels_stay_at_chance(probe):
    rng = np.random.default_rng(0)
    xtr, xte = rng.normal(size=(200, 16)), rng.normal(size=(1000, 16))
    ytr, yte = rng.integers(0, 2, 200), rng.integers(0, 2, 1000)
    out = probe(xtr, ytr, xte, yte, "binary")
    assert abs(out["auc"] - 0.5) < 0.06  # the AUC's standard error is ~0.018 at 1000 test samples


@pytest.mark.parametrize("probe", [linear_probe, knn_probe])
def test_multiclass_scores_are_probabilities(probe):
    xtr, ytr = gaussian_classes(150, num_classes=3, seed=0)
    xte, yte = gaussian_classes(90, num_classes=3, seed=1)
    out = probe(xtr, ytr, xte, yte, "multiclass")
    assert out["scores"].shape == (90, 3)
    np.testing.assert_allclose(out["scores"].sum(1), 1.0, atol=1e-6)
    assert out["acc"] > 0.9 and out["auc"] > 0.95


@pytest.mark.parametrize("probe", [linear_probe, knn_probe])
def test_multilabel(probe):
    rng = np.random.default_rng(0)
    xtr, xte = rng.normal(size=(150, 8)), rng.normal(size=(100, 8))
    ytr, yte = (xtr[:, :3] > 0).astype(int), (xte[:, :3] > 0).astype(int)  # label k: sign of feature k
    out = probe(xtr, ytr, xte, yte, "multilabel")
    assert out["scores"].shape == (100, 3) and len(out["per_class_auc"]) == 3
    assert min(out["per_class_auc"]) > 0.85


def test_linear_probe_picks_the_best_validation_c():
    xtr, ytr = gaussian_classes(60, dim=32, shift=0.8, seed=0)
    xva, yva = gaussian_classes(80, dim=32, shift=0.8, seed=1)
    xte, yte = gaussian_classes(80, dim=32, shift=0.8, seed=2)
    out = linear_probe(xtr, ytr, xte, yte, "binary", val_x=xva, val_y=yva)
    assert out["C"] in DEFAULT_C_GRID
    # validation AUC of each C, with the probe fitted on the training split only
    val_auc = {c: linear_probe(xtr, ytr, xva, yva, "binary", default_c=c)["auc"] for c in DEFAULT_C_GRID}
    assert val_auc[out["C"]] == max(val_auc.values())
    assert out["C"] == next(c for c in DEFAULT_C_GRID if val_auc[c] == max(val_auc.values()))  # first best
    fixed = linear_probe(xtr, ytr, xte, yte, "binary", default_c=out["C"])
    np.testing.assert_allclose(out["scores"], fixed["scores"])


def test_linear_probe_without_validation_uses_default_c():
    xtr, ytr = gaussian_classes(40, seed=0)
    assert linear_probe(xtr, ytr, xtr, ytr, "binary")["C"] == 1.0
    assert linear_probe(xtr, ytr, xtr, ytr, "binary", default_c=0.05)["C"] == 0.05


def test_linear_probe_is_invariant_to_feature_scales():
    xtr, ytr = gaussian_classes(80, shift=1.0, seed=0)
    xte, yte = gaussian_classes(50, shift=1.0, seed=1)
    xtr, xte = xtr.astype(np.float64), xte.astype(np.float64)
    scale, offset = np.geomspace(1e-3, 1e3, xtr.shape[1]), np.linspace(-50, 50, xtr.shape[1])
    a = linear_probe(xtr, ytr, xte, yte, "binary")
    b = linear_probe(xtr * scale + offset, ytr, xte * scale + offset, yte, "binary")
    np.testing.assert_allclose(a["scores"], b["scores"], atol=1e-3)  # equal up to the solver tolerance


def test_standardize_uses_reference_statistics():
    ref = np.array([[0.0, 10.0], [2.0, 30.0]])  # mean (1, 20), std (1, 10)
    (x,) = standardize(np.array([[3.0, 40.0]]), reference=ref, eps=0.0)
    np.testing.assert_allclose(x, [[2.0, 2.0]])
    a, b = standardize(ref, np.array([[1.0, 20.0]]), eps=0.0)
    np.testing.assert_allclose(a, [[-1.0, -1.0], [1.0, 1.0]])
    np.testing.assert_allclose(b, [[0.0, 0.0]])


def test_knn_votes_by_hand():
    train_x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    train_y = np.array([0, 1, 1])
    test_x = np.array([[2.0, 0.2]])  # cosine similarities: 0.995, 0.0995, 0.7739
    sims = (train_x / np.linalg.norm(train_x, axis=1, keepdims=True)) @ (test_x[0] / np.linalg.norm(test_x[0]))
    out1 = knn_probe(train_x, train_y, test_x, [0], "binary", k=1)
    assert out1["k"] == 1 and out1["scores"][0] == 0.0  # nearest neighbour is class 0
    t = 0.5
    w = np.exp(sims / t)
    out = knn_probe(train_x, train_y, test_x, [0], "binary", k=2, temperature=t)  # neighbours 0 and 2
    assert out["scores"][0] == pytest.approx(w[2] / (w[0] + w[2]), rel=1e-5)
    out_all = knn_probe(train_x, train_y, test_x, [0], "multiclass", k=50, temperature=t)
    assert out_all["k"] == 3  # capped at the training set size
    np.testing.assert_allclose(out_all["scores"][0], [w[0] / w.sum(), (w[1] + w[2]) / w.sum()], rtol=1e-5)


def test_invalid_probe_inputs():
    x, y = gaussian_classes(10)
    with pytest.raises(ValueError, match="at least 2 classes"):
        linear_probe(x, np.zeros(10, dtype=int), x, y, "binary")
    with pytest.raises(ValueError, match="differ in length"):
        linear_probe(x, y[:5], x, y, "binary")
    with pytest.raises(ValueError, match=r"feature matrix \(N, D\)"):
        knn_probe(x[:, 0], y, x, y, "binary")
    with pytest.raises(ValueError, match="NaN"):
        knn_probe(np.full_like(x, np.nan), y, x, y, "binary")
    with pytest.raises(ValueError, match="k must be"):
        knn_probe(x, y, x, y, "binary", k=0)
    with pytest.raises(ValueError, match="temperature"):
        knn_probe(x, y, x, y, "binary", temperature=0.0)
