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
"""Deletion / insertion curves of attribution maps on AdrenalMNIST3D (Petsiuk et al., RISE, 2018).

The classifier is the pretrained ViT of ``benchmarks.adrenalmnist3d`` (masked latent prediction with SIGReg) with a
logistic-regression probe on its pooled features (fitted on the training split). For test volumes, each map ranks the
voxels; deletion sets the most salient voxels to 0 (the background of these crops) first and follows the probability
of the predicted class (lower area = the map found what the decision rests on), insertion starts from zeros and puts
them back (higher area = better). Maps: occlusion sensitivity (MONAI), ViT attention rollout and last-layer attention
(class-agnostic), and uniformly random maps as the baseline.

    python -m benchmarks.interpret_adrenal --checkpoint outputs/adrenalmnist3d/engine_sigreg_s0/checkpoint_00001036.pt
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from benchmarks._common import write_results
from benchmarks._pretrain3d import build_encoder
from benchmarks.adrenalmnist3d import load
from monai_jepa.interpret import ViTAttentionMap, attribution_map, deletion_insertion
from monai_jepa.networks import load_pretrained_encoder


class ProbeClassifier(torch.nn.Module):
    """Encoder + logistic probe as two logits ``[-z, z]`` (class 0 / class 1), differentiable end to end."""

    def __init__(self, encoder: torch.nn.Module, weight: np.ndarray, bias: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = torch.nn.Linear(weight.shape[0], 1)
        with torch.no_grad():
            self.head.weight.copy_(torch.as_tensor(weight, dtype=torch.float32).view(1, -1))
            self.head.bias.fill_(float(bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.head(self.encoder(x)[1])
        return torch.cat([-z, z], dim=1)


def _features(encoder: torch.nn.Module, x: torch.Tensor, batch: int = 64) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([encoder(x[i : i + batch].float())[1] for i in range(0, len(x), batch)]).numpy()


def _probe(encoder: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> ProbeClassifier:
    from sklearn.linear_model import LogisticRegression

    f = _features(encoder, x)
    mean, std = f.mean(0), f.std(0) + 1e-6
    clf = LogisticRegression(max_iter=5000, C=1.0).fit((f - mean) / std, y.numpy().ravel())
    weight = clf.coef_[0] / std
    return ProbeClassifier(encoder, weight, float(clf.intercept_[0] - (clf.coef_[0] * mean / std).sum())).eval()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="outputs/adrenalmnist3d/engine_sigreg_s0/checkpoint_00001036.pt")
    p.add_argument("--num_volumes", type=int, default=40, help="the first N / 2 test volumes of each class")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default="interpret/adrenalmnist3d_deletion_insertion")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    encoder = build_encoder(1, (28, 28, 28), patch_size=4, hidden=96, layers=4, heads=4)
    encoder = load_pretrained_encoder(args.checkpoint, encoder, prefix="encoder.").eval()
    x_tr, y_tr = load("train")
    x_te, y_te = load("test")
    net = _probe(encoder, x_tr, y_tr)
    labels = y_te.view(-1)
    half = args.num_volumes // 2
    chosen = torch.cat([torch.nonzero(labels == k).view(-1)[:half] for k in (0, 1)])
    x, y = x_te[chosen].float(), labels[chosen]
    with torch.no_grad():
        pred = net(x).argmax(1)
    gen = torch.Generator().manual_seed(args.seed)
    maps = {
        "occlusion": lambda v, c: attribution_map(net, v, "occlusion", class_idx=c, mask_size=4, overlap=0.0),
        "attention_rollout": lambda v, c: ViTAttentionMap(encoder, "rollout", upsample="linear")(v),
        "attention_last": lambda v, c: ViTAttentionMap(encoder, "last", upsample="linear")(v),
        "random": lambda v, c: torch.rand(v.shape, generator=gen),
    }
    curves: dict[str, dict[str, list]] = {
        m: {"deletion": [], "insertion": [], "del_auc": [], "ins_auc": []} for m in maps
    }
    t0 = time.perf_counter()
    for i in range(len(x)):
        v, c = x[i : i + 1], int(pred[i])

        def score(batch: torch.Tensor, c: int = c) -> torch.Tensor:
            return net(batch).softmax(1)[:, c]

        for name, fn in maps.items():
            out = deletion_insertion(score, v, fn(v, c)[0, 0], steps=args.steps, baseline=0.0)
            curves[name]["deletion"].append(out["deletion"].tolist())
            curves[name]["insertion"].append(out["insertion"].tolist())
            curves[name]["del_auc"].append(out["deletion_auc"])
            curves[name]["ins_auc"].append(out["insertion_auc"])
    seconds = time.perf_counter() - t0
    acc = float((pred == y).float().mean())
    lines = [
        "# Deletion / insertion of attribution maps: AdrenalMNIST3D",
        "",
        f"Pretrained ViT (`{args.checkpoint}`) + logistic probe on its pooled features; {len(x)} test volumes "
        "(the first "
        f"{half} of each class) "
        f"(probe accuracy on them {acc:.3f}), the predicted class explained, {args.steps} steps, removed voxels set "
        "to 0. Mean +- std over volumes; the paired difference is to the random map of the same volume.",
        "",
        "| map | deletion AUC (lower is better) | insertion AUC (higher is better) | deletion - random | "
        "insertion - random |",
        "|---|---:|---:|---:|---:|",
    ]
    rand_del, rand_ins = np.array(curves["random"]["del_auc"]), np.array(curves["random"]["ins_auc"])
    summary = {}
    for name, c in curves.items():
        d, ins = np.array(c["del_auc"]), np.array(c["ins_auc"])
        summary[name] = {"deletion_auc": float(d.mean()), "deletion_auc_std": float(d.std()),
                         "insertion_auc": float(ins.mean()), "insertion_auc_std": float(ins.std()),
                         "deletion_vs_random": float((d - rand_del).mean()),
                         "insertion_vs_random": float((ins - rand_ins).mean())}  # fmt: skip
        s = summary[name]
        lines.append(
            f"| {name} | {s['deletion_auc']:.3f} +- {s['deletion_auc_std']:.3f} | {s['insertion_auc']:.3f} +- "
            f"{s['insertion_auc_std']:.3f} | {s['deletion_vs_random']:+.3f} | {s['insertion_vs_random']:+.3f} |"
        )
    payload = {"checkpoint": args.checkpoint, "num_volumes": len(x), "test_indices": chosen.tolist(),
               "steps": args.steps, "probe_accuracy": acc,
               "seconds": round(seconds, 1), "summary": summary, "curves": curves}  # fmt: skip
    write_results(args.name, payload, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
