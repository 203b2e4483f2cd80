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

import math

import numpy as np
import pytest
import torch

from monai_jepa.evaluation import (
    few_shot,
    knn_probe,
    label_fraction_sweep,
    linear_probe,
    stratified_subset,
    summarize_runs,
)

IMBALANCED = np.repeat([0, 1, 2], [100, 10, 3])  # class counts 100, 10, 3


def features(labels, dim=8, shift=2.0, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(len(labels), dim))
    x[np.arange(len(labels)), labels] += shift
    return x


def class_counts(labels, idx, k=3):
    return np.bincount(labels[idx], minlength=k).tolist()


def test_stratified_fraction_sizes_and_coverage():
    labels = np.random.default_rng(0).permutation(IMBALANCED)
    idx = stratified_subset(labels, fraction=0.1, seed=0)
    # round(10.0) = 10, round(1.0) = 1, round(0.3) = 0 -> at least one
    assert class_counts(labels, idx) == [10, 1, 1]
    assert np.all(np.diff(idx) > 0) and idx.dtype == np.int64  # sorted, no repeats
    np.testing.assert_array_equal(idx, stratified_subset(torch.from_numpy(labels), fraction=0.1, seed=0))
    assert not np.array_equal(idx, stratified_subset(labels, fraction=0.1, seed=1))
    assert class_counts(labels, stratified_subset(labels, fraction=0.5, seed=0)) == [50, 5, 2]  # round(1.5) = 2
    np.testing.assert_array_equal(stratified_subset(labels, fraction=1.0), np.arange(len(labels)))


def test_stratified_shots_per_class():
    labels = IMBALANCED.reshape(-1, 1)  # (N, 1) labels are accepted
    idx = stratified_subset(labels, shots_per_class=5, seed=2)
    assert class_counts(IMBALANCED, idx) == [5, 5, 3]  # capped by the class size
    assert class_counts(IMBALANCED, stratified_subset(IMBALANCED, shots_per_class=1, seed=0)) == [1, 1, 1]


def test_stratified_multilabel_uses_first_positive():
    labels = np.array([[1, 0, 1]] * 4 + [[0, 1, 1]] * 4 + [[0, 0, 1]] * 4 + [[0, 0, 0]] * 4)
    idx = stratified_subset(labels, shots_per_class=1, seed=0)
    assert len(idx) == 4  # first positive 0, 1, 2 and "no positive"
    assert sorted(i // 4 for i in idx) == [0, 1, 2, 3]
    assert len(stratified_subset(labels, fraction=0.5, seed=0)) == 8


def test_stratified_subset_errors():
    with pytest.raises(ValueError, match="exactly one"):
        stratified_subset(IMBALANCED)
    with pytest.raises(ValueError, match="exactly one"):
        stratified_subset(IMBALANCED, fraction=0.5, shots_per_class=2)
    with pytest.raises(ValueError, match=r"fraction must lie in \(0, 1\]"):
        stratified_subset(IMBALANCED, fraction=1.5)
    with pytest.raises(ValueError, match="shots_per_class"):
        stratified_subset(IMBALANCED, shots_per_class=0)


def test_summarize_runs():
    runs = [
        {"acc": 0.5, "auc": 0.6, "per_class_auc": [0.5, None], "n_labels": 10, "seconds": 1.0, "C": 1.0, "k": 5},
        {"acc": 0.7, "auc": float("nan"), "per_class_auc": [0.7, 0.9], "n_labels": 10, "seconds": 2.0, "C": 0.1},
        {"acc": 0.9, "auc": 0.8, "per_class_auc": [0.9, None], "n_labels": 13, "seconds": 0.5, "C": 1.0, "scores": 0},
    ]
    out = summarize_runs(runs)
    assert out["acc"] == pytest.approx(0.7) and out["acc_std"] == pytest.approx(0.2)  # sample std, ddof=1
    assert out["auc"] == pytest.approx(0.7) and out["auc_std"] == pytest.approx(math.sqrt(0.02))  # NaN ignored
    assert out["per_class_auc"] == [pytest.approx(0.7), pytest.approx(0.9)]
    assert out["per_class_auc_std"][0] == pytest.approx(0.2) and out["per_class_auc_std"][1] is None
    assert out["n_labels"] == pytest.approx(11.0) and out["k"] == 5  # averaged; present in one run only
    assert out["seconds"] == pytest.approx(3.5)
    assert out["C"] == [1.0, 0.1, 1.0]  # other values: listed per run when they differ
    assert "scores" not in out
    single = summarize_runs(runs[:2])
    assert single["n_labels"] == 10 and isinstance(single["n_labels"], int)  # equal in every run: kept as is
    single = summarize_runs(runs[:1])
    assert single["acc"] == 0.5 and "acc_std" not in single
    with pytest.raises(ValueError, match="at least one run"):
        summarize_runs([])


def test_few_shot_episodes_mean_and_std():
    ytr = np.arange(60) % 3
    yte = np.arange(45) % 3
    xtr, xte = features(ytr, seed=0), features(yte, seed=1)
    records = few_shot(xtr, ytr, xte, yte, "multiclass", shots=(1, 5), episodes=4, seed=10)
    assert [(r["shots"], r["probe"]) for r in records] == [(1, "linear"), (1, "knn"), (5, "linear"), (5, "knn")]
    for r in records:
        assert r["protocol"] == "few_shot" and r["label_fraction"] is None and r["episodes"] == 4
        assert r["n_labels"] == 3 * r["shots"] and r["seeds"] == [10, 11, 12, 13]
    # the record is the mean / sample std of the episodes, each drawn by stratified_subset(seed + e)
    for r in records:
        accs = []
        for seed in r["seeds"]:
            idx = stratified_subset(ytr, shots_per_class=r["shots"], seed=seed)
            if r["probe"] == "linear":
                out = linear_probe(xtr[idx], ytr[idx], xte, yte, "multiclass", seed=seed, norm_x=xtr)
            else:
                out = knn_probe(xtr[idx], ytr[idx], xte, yte, "multiclass")
            accs.append(out["acc"])
        assert r["acc"] == pytest.approx(np.mean(accs)) and r["acc_std"] == pytest.approx(np.std(accs, ddof=1))
    assert records[0]["acc_std"] > 0  # 1-shot episodes differ


def test_label_fraction_sweep_records():
    ytr = np.arange(200) % 2
    yte = np.arange(100) % 2
    xtr, xte = features(ytr, seed=0), features(yte, seed=1)
    xva, yva = features(yte, seed=2), yte
    records = label_fraction_sweep(
        xtr, ytr, xte, yte, "binary", fractions=(0.05, 1.0), seeds=(0, 1), probes=("linear",), val_x=xva, val_y=yva
    )
    assert len(records) == 2
    low, full = records
    assert low["protocol"] == "linear" and low["label_fraction"] == 0.05 and low["shots"] is None
    assert low["n_labels"] == 10 and low["seeds"] == [0, 1] and "auc_std" in low
    assert full["n_labels"] == 200 and full["seeds"] == [0] and "auc_std" not in full  # 100%: one run
    assert full["auc"] > 0.9 and full["C"] in (0.001, 0.01, 0.1, 1.0, 10.0)
    aucs = []
    for seed in (0, 1):
        idx = stratified_subset(ytr, fraction=0.05, seed=seed)
        out = linear_probe(xtr[idx], ytr[idx], xte, yte, "binary", val_x=xva, val_y=yva, seed=seed, norm_x=xtr)
        aucs.append(out["auc"])
    assert low["auc"] == pytest.approx(np.mean(aucs)) and low["auc_std"] == pytest.approx(np.std(aucs, ddof=1))


def test_protocol_argument_errors():
    y = np.arange(20) % 2
    x = features(y)
    with pytest.raises(ValueError, match="episodes"):
        few_shot(x, y, x, y, "binary", episodes=0)
    with pytest.raises(ValueError, match="label fractions"):
        label_fraction_sweep(x, y, x, y, "binary", fractions=(0.0,))
    with pytest.raises(ValueError, match="svm"):
        few_shot(x, y, x, y, "binary", probes=("svm",))
    with pytest.raises(ValueError, match="differ in length"):
        few_shot(x, y[:10], x, y, "binary")
