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
"""Do the interpretation maps find the tumour? TCIA Brain-Tumor-Progression (one patient, two studies).

The brats_vjepa bundle is pretrained on the series of the study (``train.json``, UNet and ``vit.json`` ViT), then its
``interpret.json`` writes the maps as a user gets them (NIfTI on each series' own grid). Scored here: the voxel AUC
of each map for tumour (the study's ``MaskTumor`` series) against the other voxels of the head, per series; beside
the same maps from the untrained networks (random init) and two trivial maps (image intensity, and its distance to
the head's median). Pretraining must already have run (``--unet_dir`` / ``--vit_dir``, see the commands in
benchmarks/results/interpret/README.md).

    python -m benchmarks.interpret_tcia --unet_dir outputs/interpret/tcia_unet --vit_dir outputs/interpret/tcia_vit
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from benchmarks._common import RESULTS, provenance, run_logged, write_results

C = "bundles/brats_vjepa/configs"
DATA = "../shared/data/tcia_brain_tumor_progression"
GEOMETRY = ["--spacing", "[2.5, 2.5, 6.5]", "--volume_size", "[80, 96, 32]", "--seed", "0"]


def _config_files(vit: bool, interpret: bool) -> list[str]:
    return [f"{C}/train.json"] + ([f"{C}/interpret.json"] if interpret else []) + ([f"{C}/vit.json"] if vit else [])


def _configs(vit: bool, interpret: bool) -> str:
    return "[" + ",".join(f"'{f}'" for f in _config_files(vit, interpret)) + "]"


def _random_init(out_dir: Path, vit: bool, seed: int = 0) -> None:
    """The bundle's network before pretraining (the random-init twin), saved where interpret.json reads it."""
    from monai.bundle import ConfigWorkflow

    wf = ConfigWorkflow(config_file=_config_files(vit, False), workflow_type=None, logging_file=False,
                        dataset_dir=DATA, output_dir=str(out_dir), spacing=[2.5, 2.5, 6.5],
                        volume_size=[80, 96, 32], seed=seed)  # fmt: skip
    torch.manual_seed(seed)
    net = wf.parser.get_parsed_content("network_def")
    (out_dir / "models").mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), out_dir / "models" / "model.pt")


def _interpret(out_dir: Path, vit: bool, method: str, log: Path) -> float:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "interpreting", "--config_file", _configs(vit, True),
           "--dataset_dir", DATA, "--output_dir", str(out_dir), *GEOMETRY, "--interpret_split", "training",
           "--interpret_method", method]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(RESULTS.parents[1])}
    return run_logged(cmd, log, env=env)


def _auc(score: np.ndarray, positive: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(positive.astype(np.uint8), score))


def _score_maps(out_dir: Path, method: str) -> dict[str, dict[str, float]]:
    import nibabel as nib

    from monai_jepa.transforms import LoadVolumed

    datalist = json.loads((out_dir / "datalist.json").read_text())
    root, rows = Path(datalist["root"]), {}
    for item in datalist["training"]:
        data = LoadVolumed(resample=True)(
            {"image": [str(root / p) for p in item["image"]], "label": str(root / item["label"])}
        )
        image, tumour = data["image"][0].numpy(), data["label"][0].numpy() > 0
        head = image > 0.1 * np.percentile(image, 99.5)
        heat = np.asarray(nib.load(out_dir / "interpret" / f"{item['id']}_{method}.nii.gz").dataobj)
        if heat.shape != image.shape:
            raise ValueError(f"map of {item['id']} has shape {heat.shape}, its image {image.shape}.")
        inside = head & np.isfinite(heat)
        rows[item["id"]] = {
            "map": _auc(heat[inside], tumour[inside]),
            "intensity": _auc(image[inside], tumour[inside]),
            "intensity_deviation": _auc(np.abs(image[inside] - np.median(image[head])), tumour[inside]),
            "tumour_voxels": int(tumour[inside].sum()),
            "head_voxels": int(inside.sum()),
        }
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--unet_dir", default="outputs/interpret/tcia_unet", help="pretraining output_dir (UNet)")
    p.add_argument("--vit_dir", default="outputs/interpret/tcia_vit", help="pretraining output_dir (vit.json)")
    p.add_argument("--name", default="interpret/tcia_tumour_auc")
    args = p.parse_args()
    unet, vit = Path(args.unet_dir), Path(args.vit_dir)
    runs = [("unet", False, unet, "predictor_error"), ("vit", True, vit, "predictor_error"),
            ("vit", True, vit, "attention")]  # fmt: skip
    logs = RESULTS / "interpret" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results = []
    for net, vit, pretrained, method in runs:
        random_dir = pretrained.with_name(pretrained.name + "_random_init")
        if not (random_dir / "models" / "model.pt").is_file():
            _random_init(random_dir, vit)
        for init, folder in (("pretrained", pretrained), ("random init", random_dir)):
            seconds = _interpret(folder, vit, method, logs / f"{folder.name}_{method}.log")
            rows = _score_maps(folder, method)
            results.append({"network": net, "map": method, "init": init, "seconds": round(seconds, 1), "series": rows})
            print(net, method, init, {k: round(v["map"], 3) for k, v in rows.items()}, flush=True)
    lines = [
        "# Interpretation maps vs the tumour mask: TCIA Brain-Tumor-Progression (PGBM-001)",
        "",
        "Voxel AUC of each map for tumour (`MaskTumor` of the same study) against the other head voxels (intensity "
        "> 10% of the 99.5th percentile), on each series' own grid, as written by `configs/interpret.json`. "
        "`intensity` and `|intensity - median|` are trivial maps of the same voxels, for reference. One patient: "
        "the pretraining images are the scored images (no held-out patient exists in this set).",
        "",
    ]
    ids = list(results[0]["series"])
    lines += ["| network | map | init | " + " | ".join(ids) + " | mean |", "|---|---|---|" + "---:|" * (len(ids) + 1)]
    for r in results:
        vals = [r["series"][i]["map"] for i in ids]
        lines.append(f"| {r['network']} | {r['map']} | {r['init']} | " + " | ".join(f"{v:.3f}" for v in vals)
                     + f" | {np.mean(vals):.3f} |")  # fmt: skip
    for key, label in (("intensity", "intensity"), ("intensity_deviation", "abs(intensity - median)")):
        vals = [results[0]["series"][i][key] for i in ids]
        lines.append(f"| - | {label} | - | " + " | ".join(f"{v:.3f}" for v in vals) + f" | {np.mean(vals):.3f} |")
    write_results(args.name, {"results": results, "provenance": provenance()}, "\n".join(lines))


if __name__ == "__main__":
    main()
