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
"""The brats_vjepa bundle on any 3D source: train properties and data-driven input channels, the two-command
pipeline (training, then evaluating) on tiny segmentation demo data and on a tiny MedMNIST 3D file, and 2-process
DDP training on CPU with gloo."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.bundles._repo import bundle_env, find_artifacts

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "brats_vjepa"
TRAIN = "bundles/brats_vjepa/configs/train.json"
EVALUATE = "bundles/brats_vjepa/configs/evaluate.json"
MULTI_GPU = "bundles/brats_vjepa/configs/multi_gpu_train.json"
# tiny model: 16^3 volumes and crops, a 2-level UNet (4, 8 channels, one stride 2: 8^3 tokens of 2^3), one predictor
# block of width 24
TINY = [
    "--volume_size", "[16,16,16]", "--roi_size", "[16,16,16]", "--channels", "[4,8]", "--strides", "[2]",
    "--predictor_depth", "1", "--predictor_dim", "24", "--max_epochs", "1", "--log_interval", "1",
    "--mask_block_scale", "[0.2,0.3]", "--num_mask_blocks", "1",
]  # fmt: skip
DEMO = ["--demo_num_cases", "6", "--demo_size", "[24,24,24]"]  # 4 training, 1 validation, 1 test case
_ARTIFACT = re.compile(
    r"(events\.out\.tfevents.*|.*\.pt|checkpoint_latest\.txt|datalist\.json|.*\.nii\.gz|metrics\.json)"
)
_SKIP_DIRS = {".git", "__pycache__", ".pytest_cache"}


def _bundle_cmd(*args: str, launcher: tuple[str, ...] = (), timeout: int = 240) -> str:
    """Run ``python [launcher] -m monai.bundle run args`` from the repository root; return stdout + stderr."""
    cmd = [sys.executable, *launcher, "-m", "monai.bundle", "run", *args]
    proc = subprocess.run(cmd, cwd=REPO, env=bundle_env(), capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{out[-4000:]}"
    return out


def _workflow(config_file, workflow_type: str | None, **override):
    from monai.bundle import ConfigWorkflow

    return ConfigWorkflow(config_file=config_file, workflow_type=workflow_type, logging_file=False, **override)


def _tiny_medmnist3d(path: Path) -> Path:
    """A binary 12^3 'MedMNIST 3D' file: class 1 has a bright cube in the centre."""
    rs = np.random.RandomState(0)
    arrays = {}
    for split, n in (("train", 16), ("val", 6), ("test", 8)):
        labels = np.arange(n) % 2
        images = (rs.rand(n, 12, 12, 12) * 60).astype(np.uint8)
        images[labels == 1, 3:9, 3:9, 3:9] += 150
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels[:, None].astype(np.uint8)
    np.savez(path, **arrays)
    return path


def _overrides(args: list[str]) -> dict:
    """``--key value`` command-line pairs as ConfigWorkflow overrides (JSON values parsed)."""
    out = {}
    for key, value in zip(args[::2], args[1::2]):
        try:
            out[key[2:]] = json.loads(value)
        except ValueError:
            out[key[2:]] = value
    return out


@pytest.mark.parametrize("name", ["train", "evaluate", "multi_gpu_train", "vit"])
def test_configs_are_four_space_json(name):
    text = (BUNDLE / "configs" / f"{name}.json").read_text()
    assert text == json.dumps(json.loads(text), indent=4) + "\n"


def test_train_properties_and_channels_follow_the_data(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["monai.bundle", "run", "training", "--config_file", str(TRAIN)])
    wf = _workflow(TRAIN, "train", output_dir=str(tmp_path / "demo"), **_overrides(DEMO))
    wf.initialize()
    assert wf.check_properties() == []
    assert Path(wf.bundle_root) == BUNDLE and wf.parser["run"] == wf.parser["training"]
    datalist = wf.parser.get_parsed_content("datalist")
    assert (datalist["source"], datalist["is_synthetic"], datalist["in_channels"]) == ("demo", True, 4)
    assert json.loads((tmp_path / "demo" / "datalist.json").read_text())["training"] == datalist["training"]
    unet = wf.parser.get_parsed_content("encoder").net
    assert (unet.in_channels, unet.out_channels) == (4, 4)  # the 4 sequences; the classes 0, 1, 2, 4
    npz = _tiny_medmnist3d(tmp_path / "tiny3d.npz")
    mm = _workflow(TRAIN, "train", output_dir=str(tmp_path / "mm"), dataset_dir=str(npz), **_overrides(TINY))
    mm.initialize()
    assert mm.check_properties() == []
    info = mm.parser.get_parsed_content("train#source").info
    assert (info["source"], info["task"], info["in_channels"], info["num_items"]) == ("medmnist", "binary", 1, 16)
    assert mm.parser.get_parsed_content("encoder").net.in_channels == 1
    batch = next(iter(mm.parser.get_parsed_content("train#dataloader")))
    assert set(batch) == {"image"} and batch["image"].shape == (4, 1, 16, 16, 16)  # 2 crops of 2 volumes
    assert type(batch["image"]) is torch.Tensor  # no MetaTensor in the training loop


def test_segmentation_pipeline_on_demo_data(tmp_path):
    out = tmp_path / "seg"
    before = find_artifacts(_ARTIFACT, _SKIP_DIRS)
    train_log = _bundle_cmd("training", "--config_file", TRAIN, "--output_dir", str(out), *TINY, *DEMO)
    evaluate = ["--eval_seg_label_counts", "[1,None]", "--eval_seg_steps", "2"]
    eval_log = _bundle_cmd("evaluating", "--config_file", f"['{TRAIN}','{EVALUATE}']", "--output_dir", str(out),
                           *TINY, *DEMO, *evaluate)  # fmt: skip
    assert find_artifacts(_ARTIFACT, _SKIP_DIRS) == before  # nothing written outside the output folder
    assert "NO REAL DATA" in train_log and "SYNTHETIC" in eval_log
    assert (out / "models" / "model.pt").is_file()
    records = json.loads((out / "eval" / "metrics.json").read_text())
    # the pretrained UNet and the same UNet from random init (the MONAI UNet from scratch), at 1 and all (4) volumes
    assert [(r["method"], r["num_labelled"]) for r in records] == [
        (m, n) for n in (1, 4) for m in ("unet_vjepa", "unet_scratch")
    ]
    for r in records:
        assert (r["dataset"], r["protocol"], r["steps"], r["num_cases"]) == ("demo_brats", "segmentation", 2, 1)
        assert 0.0 <= r["dice"] <= 1.0 and (r["hd95"] is None or math.isfinite(r["hd95"]))
        classes = ["necrotic tumour core (NCR)", "peritumoral oedema (ED)", "enhancing tumour (ET)"]
        assert list(r["dice_per_class"]) == list(r["hd95_per_class"]) == classes
        assert r["dice"] == pytest.approx(np.mean(list(r["dice_per_class"].values())))
        assert r["commit"] is not None and "evaluating" in r["command"]
    report = (out / "eval" / "report.md").read_text()
    assert report.startswith("# Segmentation evaluation: demo_brats") and "| 4 | Dice " in report


def test_classification_pipeline_on_medmnist_3d(tmp_path):
    npz = _tiny_medmnist3d(tmp_path / "tiny3d.npz")
    out = tmp_path / "cls"
    common = {"output_dir": str(out), "dataset_dir": str(npz), "batch_size": 4, **_overrides(TINY)}
    train = _workflow(TRAIN, "train", **common)
    train.initialize()
    train.run()
    train.finalize()
    state = torch.load(out / "models" / "model.pt", weights_only=True)
    assert tuple(state["encoder.net.model.0.conv.unit0.conv.weight"].shape) == (4, 1, 3, 3, 3)  # 1 channel in
    protocols = ["linear", "knn", "few_shot", "label_fraction", "fine_tune", "scratch", "random_init"]
    evaluate = _workflow([TRAIN, EVALUATE], None, run_id="evaluating", eval_protocols=protocols,
                         eval_label_fractions=[0.5, 1.0], eval_shots=[2], eval_seeds=[0], eval_episodes=1,
                         eval_finetune_fractions=[1.0], eval_finetune_epochs=1, eval_finetune_minutes=None,
                         **common)  # fmt: skip
    evaluate.initialize()
    evaluate.run()
    evaluate.finalize()
    records = json.loads((out / "eval" / "metrics.json").read_text())
    assert {r["protocol"] for r in records} == {"linear", "knn", "few_shot", "fine_tune"}
    assert {r["method"] for r in records} == {"vjepa", "random_init", "scratch"}
    assert all(r["dataset"] == "tiny3d" and 0.0 <= r["auc"] <= 1.0 for r in records)
    linear = {r["n_labels"]: r for r in records if (r["protocol"], r["method"]) == ("linear", "vjepa")}
    assert sorted(linear) == [8, 16]  # label fractions of the 16 training volumes
    assert linear[16]["auc"] > 0.9  # the bright cube separates the classes even through a one-epoch encoder
    assert (out / "eval" / "report.md").is_file()


def test_multi_gpu_train_runs_on_cpu_with_gloo(tmp_path):
    out = tmp_path / "ddp"
    launcher = ("-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2")
    args = ["--config_file", f"['{TRAIN}','{MULTI_GPU}']", "--output_dir", str(out), *TINY, *DEMO]
    log = _bundle_cmd("training", *args, "--max_epochs", "2", "--batch_size", "1", "--num_samples", "2",
                      launcher=launcher)  # fmt: skip
    # 4 training volumes over 2 ranks, 1 volume (2 crops) per batch, 2 epochs: 4 iterations; only rank 0 logs and saves
    assert len(re.findall(r"Epoch: \d/2, Iter: \d/2 -- ", log)) == 4 and log.count("NO REAL DATA") == 1
    assert (out / "models" / "checkpoint_latest.txt").read_text().strip() == "checkpoint_00000004.pt"
    assert len(list(out.glob("events.out.tfevents.*"))) == 1
    state = torch.load(out / "models" / "model.pt", weights_only=True)
    assert state and not any(k.startswith("module.") for k in state)
    assert len(list((out / "demo_data").glob("BraTS2021_*/*_seg.nii.gz"))) == 6
