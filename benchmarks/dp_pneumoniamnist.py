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
"""Accuracy against privacy: a DP-SGD linear probe on frozen ``cxr_lejepa`` features of PneumoniaMNIST.

The network is the bundle's ``network_def`` (``bundles/cxr_lejepa/configs/train.json``), once with the weights of a
pretraining run (``--checkpoint``, e.g. ``outputs/dp_cxr/models/model.pt`` from ``python -m monai.bundle run
training ...``) and once at its random initialisation (the twin). The images are read as the bundle reads them
(``resolve_image_source``, 64 px). For each encoder, target epsilon and seed,
:func:`monai_jepa.privacy.dp_linear_probe` trains a linear head on the frozen training features (4708 records,
delta = 1 / (10 N)) and is scored on the official test split. ``inf`` is the same head trained by the same SGD
without clipping or noise; ``lr`` (the sklearn probe of the evaluation suite: standardised features, C chosen on the
validation split) is given for reference. The DP runs use no validation data; their hyper-parameters are fixed
(``--epochs``, ``--lr``, ``--batch_size``, ``--max_grad_norm``).

    PYTHONPATH=. OMP_NUM_THREADS=1 nice -n 5 python -m benchmarks.dp_pneumoniamnist \
        --checkpoint outputs/dp_cxr/models/model.pt --seeds 0 1 2

Outputs: ``benchmarks/results/privacy/dp_pneumoniamnist.json`` and ``.md`` (table, settings, provenance).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.bundle import ConfigParser
from torch.utils.data import DataLoader, TensorDataset

from benchmarks._common import RESULTS, write_results
from monai_jepa.evaluation import (
    classification_metrics,
    extract_features,
    linear_probe,
    load_checkpoint_state,
    load_network_state,
)
from monai_jepa.privacy import dp_linear_probe
from monai_jepa.privacy.probe import _loss

ROOT = Path(__file__).resolve().parents[1]
DATA = os.environ.get("DATA", str(ROOT.parent / "shared/data/pneumoniamnist/pneumoniamnist.npz"))
TRAIN_CFG = ROOT / "bundles/cxr_lejepa/configs/train.json"


def _bundle(dataset_dir: str) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(str(TRAIN_CFG))
    parser.update(
        {"dataset_dir": dataset_dir, "output_dir": str(ROOT / "outputs/dp_benchmark"), "validate_data": False}
    )
    return parser


def _split(dataset_dir: str, split: str):
    from monai_jepa.data.sources import resolve_image_source

    return resolve_image_source(dataset_dir, split=split, image_size=64).dataset


def non_private_probe(train_x, train_y, test_x, test_y, epochs, batch_size, lr, seed) -> dict:
    """The DP probe's training without clipping or noise: unit-norm features, shuffled batches, SGD momentum 0.9."""
    train_x, test_x = F.normalize(train_x, dim=1), F.normalize(test_x, dim=1)
    torch.manual_seed(seed)
    model = nn.Linear(train_x.shape[1], 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    y = torch.as_tensor(np.asarray(train_y).reshape(-1), dtype=torch.float32)
    loader = DataLoader(
        TensorDataset(train_x, y), batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    for _ in range(epochs):
        for xb, yb in loader:
            optimizer.zero_grad(set_to_none=True)
            _loss(model(xb), yb, "binary").backward()
            optimizer.step()
    with torch.no_grad():
        scores = torch.sigmoid(model(test_x)[:, 0]).double().numpy()
    return classification_metrics(scores, np.asarray(test_y).reshape(-1), "binary")


def _stat(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else math.nan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="pretrained weights of the bundle's network_def")
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--epsilons", type=float, nargs="+", default=[1.0, 3.0, 8.0, math.inf])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch_size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2.0)
    ap.add_argument("--lr_grid", type=float, nargs="*", default=[1.0, 4.0, 16.0], help="validation-split look")
    ap.add_argument("--max_grad_norm", type=float, default=1.0)
    ap.add_argument("--name", default="privacy/dp_pneumoniamnist")
    args = ap.parse_args()

    start = time.perf_counter()
    data = {s: _split(args.data, s) for s in ("training", "validation", "test")}
    encoders = {}
    torch.manual_seed(0)
    encoders["random_init"] = _bundle(args.data).get_parsed_content("network_def")
    pretrained = _bundle(args.data).get_parsed_content("network_def")
    load_network_state(pretrained, load_checkpoint_state(args.checkpoint), f"checkpoint '{args.checkpoint}'")
    encoders["lejepa"] = pretrained

    rows, runs, val_sweep = [], [], []
    for method, net in encoders.items():
        t0 = time.perf_counter()
        feats = {s: extract_features(net.eval(), d, "cpu", 256) for s, d in data.items()}
        feature_seconds = time.perf_counter() - t0
        (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = feats["training"], feats["validation"], feats["test"]
        ref = linear_probe(tr_x, tr_y, te_x, te_y, "binary", val_x=va_x, val_y=va_y)
        rows.append({"method": method, "epsilon": "lr", "auc": ref["auc"], "acc": ref["acc"], "seeds": [0]})
        for eps in (1.0, 8.0):  # the look at the validation split that the learning rate was chosen from
            for lr in args.lr_grid:
                dp = {"target_epsilon": eps, "max_grad_norm": args.max_grad_norm}
                kw = dict(epochs=args.epochs, batch_size=args.batch_size, lr=lr, seed=0)
                res = dp_linear_probe(tr_x, tr_y, va_x, va_y, "binary", dp, **kw)
                val_sweep.append({"method": method, "target_epsilon": eps, "lr": lr, "val_auc": res["auc"]})
        for eps in args.epsilons:
            per_seed = []
            for seed in args.seeds:
                t1 = time.perf_counter()
                if math.isinf(eps):
                    res = non_private_probe(tr_x, tr_y, te_x, te_y, args.epochs, args.batch_size, args.lr, seed)
                    res = {**res, "epsilon": math.inf, "delta": 0.0, "noise_multiplier": 0.0}
                else:
                    res = dp_linear_probe(
                        tr_x,
                        tr_y,
                        te_x,
                        te_y,
                        "binary",
                        {"target_epsilon": eps, "max_grad_norm": args.max_grad_norm},
                        epochs=args.epochs,
                        batch_size=args.batch_size,
                        lr=args.lr,
                        seed=seed,
                    )
                res = {k: v for k, v in res.items() if k != "scores"}
                runs.append({"method": method, "target_epsilon": eps, "seed": seed, **res})
                runs[-1]["seconds"] = time.perf_counter() - t1
                per_seed.append(res)
                print(f"{method} eps={eps} seed={seed}: AUC {res['auc']:.4f} acc {res['acc']:.4f}", flush=True)
            auc, acc = _stat([r["auc"] for r in per_seed]), _stat([r["acc"] for r in per_seed])
            rows.append(
                {
                    "method": method,
                    "epsilon": eps,
                    "epsilon_spent": [r["epsilon"] for r in per_seed],
                    "delta": per_seed[0]["delta"],
                    "noise_multiplier": per_seed[0]["noise_multiplier"],
                    "auc": auc[0],
                    "auc_std": auc[1],
                    "acc": acc[0],
                    "acc_std": acc[1],
                    "seeds": list(args.seeds),
                }
            )
        rows[-1]["feature_seconds"] = feature_seconds

    settings = {k: v for k, v in vars(args).items() if k != "name"}
    settings["epsilons"] = [str(e) for e in args.epsilons]
    md = [
        "# DP-SGD linear probe on frozen cxr_lejepa features: PneumoniaMNIST",
        "",
        f"Test split (624 images), training split {len(tr_y)} records; {len(args.seeds)} seeds "
        f"({', '.join(map(str, args.seeds))}: initialisation, Poisson batches and noise), mean ± sample std.",
        f"DP-SGD: SGD momentum 0.9, lr {args.lr}, {args.epochs} epochs, expected batch {args.batch_size}, max grad "
        f"norm {args.max_grad_norm}, noise calibrated to the target epsilon (RDP accountant), delta = 1 / (10 N); "
        "features scaled to unit L2 norm per image (no statistic of the private data). `inf`: the same SGD without "
        "clipping or noise. `lr`: the evaluation suite's sklearn logistic regression (standardised features, C "
        "chosen on the validation split), one run, not private. The learning rate was fixed after a look at the "
        "validation split (seed 0, table below); that look is not part of the privacy accounting.",
        "",
        "| encoder | epsilon | delta | noise multiplier | test AUC | test ACC |",
        "|---|---|---|---|---|---|",
    ]

    def cell(r: dict, key: str) -> str:
        std = r.get(f"{key}_std")
        return f"{r[key]:.3f}" + ("" if not isinstance(std, float) or math.isnan(std) else f" ± {std:.3f}")

    for r in rows:
        delta = f"{r['delta']:.2g}" if r.get("delta") else "-"
        noise = f"{r['noise_multiplier']:.3g}" if r.get("noise_multiplier") else "-"
        md.append(f"| {r['method']} | {r['epsilon']} | {delta} | {noise} | {cell(r, 'auc')} | {cell(r, 'acc')} |")
    md += ["", "Validation AUC of the DP probe, seed 0 (learning-rate look):", ""]
    md += ["| encoder | epsilon | lr | validation AUC |", "|---|---|---|---|"]
    md += [f"| {v['method']} | {v['target_epsilon']} | {v['lr']} | {v['val_auc']:.3f} |" for v in val_sweep]
    md += ["", f"Total wall clock: {time.perf_counter() - start:.0f} s (features included)."]
    payload = {
        "settings": settings,
        "checkpoint": str(args.checkpoint),
        "rows": rows,
        "runs": runs,
        "val_sweep": val_sweep,
    }
    (RESULTS / args.name).parent.mkdir(parents=True, exist_ok=True)
    for p in write_results(args.name, payload, "\n".join(md)):
        print(p)


if __name__ == "__main__":
    main()
