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
"""The cine (2D+t) masked-latent bundle: files, a tiny end-to-end training run from the repository root on synthetic
beating-heart clips that writes only inside its output folder, and its preprocessing on real cine data."""

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
from monai.bundle import ConfigParser
from monai.networks.nets import UNet

from monai_jepa.networks import load_pretrained_encoder
from tests.bundles._repo import bundle_env, find_artifacts

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "cine_vjepa"
CONFIGS = BUNDLE / "configs"
TRAIN = "bundles/cine_vjepa/configs/train.json"
INFER = "bundles/cine_vjepa/configs/inference.json"
SUNNYBROOK = REPO.parent / "shared" / "data" / "sunnybrook_cine"
# tiny settings: 3 demo clips of 16 frames of 32x32, a 3-level UNet (4, 8, 16 channels, strides 2x2x2 twice: a
# 4x8x8 token grid; a level 2 voxels deep would hit oneDNN's bf16 Conv3d weight-gradient overflow), a 1-block
# predictor, 2 epochs
TINY = [
    "--demo_num_cases", "3", "--demo_size", "[32,32]", "--demo_num_frames", "16", "--frame_size", "[32,32]",
    "--clip_length", "16", "--channels", "[4,8,16]", "--strides", "[[2,2,2],[2,2,2]]", "--predictor_depth", "1",
    "--predictor_dim", "24", "--max_epochs", "2", "--batch_size", "2", "--log_interval", "1",
]  # fmt: skip
_ARTIFACT = re.compile(r"(events\.out\.tfevents.*|.*\.pt|checkpoint_latest\.txt|datalist\.json|.*\.nii\.gz)")
_SKIP_DIRS = {".git", "__pycache__", ".pytest_cache"}


def test_bundle_files():
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    assert meta["version"] in meta["changelog"]
    assert meta["network_data_format"]["inputs"]["image"]["spatial_shape"] == [16, 96, 96]
    for name in ("metadata", "train", "multi_gpu_train", "inference", "evaluate"):
        text = (CONFIGS / f"{name}.json").read_text()
        assert text == json.dumps(json.loads(text), indent=4) + "\n"
    assert (BUNDLE / "LICENSE").read_text() == (REPO / "LICENSE").read_text()
    assert (
        "python -m monai.bundle run training --config_file bundles/cine_vjepa/configs/train.json"
        in (BUNDLE / "docs" / "README.md").read_text()
    )
    train = json.loads((CONFIGS / "train.json").read_text())
    for key in ("dataset_dir", "output_dir", "max_epochs", "time_limit_minutes", "seed", "lambda", "batch_size"):
        assert key in train, key
    assert [t["_target_"].rsplit(".", 1)[-1] for t in train["train"]["preprocessing"]] == [
        "LoadCined", "SelectItemsd", "ScaleIntensityRangePercentilesd", "Resized", "EnsureTyped",
    ]  # fmt: skip


def test_tiny_training_run_from_repository_root(tmp_path):
    out = tmp_path / "out"
    before = find_artifacts(_ARTIFACT, _SKIP_DIRS)
    cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", TRAIN, "--output_dir", str(out)]
    proc = subprocess.run(cmd + TINY, cwd=REPO, env=bundle_env(), capture_output=True, text=True, timeout=240)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "NO REAL DATA" in log and "SYNTHETIC" in log
    assert find_artifacts(_ARTIFACT, _SKIP_DIRS) == before  # nothing written outside output_dir
    assert len(list((out / "demo_data").glob("case_*_ed.nii.gz"))) == 3
    losses = [float(v) for v in re.findall(r"loss: ([-+0-9.eE]+|nan|inf)", log)]
    assert losses and all(math.isfinite(v) for v in losses), log[-2000:]
    state = torch.load(out / "models" / "model.pt", weights_only=True)
    # the encoder's entries are a complete 2D+t UNet (1 channel in, 2 classes out) over (T, H, W)
    unet = UNet(3, 1, 2, (4, 8, 16), ((2, 2, 2), (2, 2, 2)), num_res_units=2)
    unet = load_pretrained_encoder(out / "models" / "model.pt", unet, prefix="encoder.net.")
    assert all(torch.equal(v, state[f"encoder.net.{k}"]) for k, v in unet.state_dict().items())
    assert unet(torch.zeros(1, 1, 16, 32, 32)).shape == (1, 2, 16, 32, 32)
    datalist = json.loads((out / "datalist.json").read_text())
    assert datalist["kind"] == "demo" and sum(len(datalist[s]) for s in ("training", "validation", "test")) == 3
    # clip embeddings of the training split with the weights just trained (not the released ones)
    infer = [sys.executable, "-m", "monai.bundle", "run", "--config_file", INFER, "--output_dir", str(out),
             "--split", "training", *TINY[:10], "--channels", "[4,8,16]", "--strides", "[[2,2,2],[2,2,2]]"]  # fmt: skip
    proc = subprocess.run(infer, cwd=REPO, env=bundle_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert f"Restored all variables from {out / 'models' / 'model.pt'}" in proc.stdout + proc.stderr
    emb = np.load(out / "inference" / "embeddings.npy")
    assert emb.shape[0] == len(datalist["training"]) and np.isfinite(emb).all() and np.abs(emb).max() > 0
    assert find_artifacts(_ARTIFACT, _SKIP_DIRS) == before


def test_two_masks_per_clip():
    parser = ConfigParser()
    parser.read_config(CONFIGS / "train.json")
    parser["demo_num_cases"] = 2
    masks = [parser.get_parsed_content(f"train#masks#{k}", instantiate=True) for k in (0, 1)]
    assert [type(m).__name__ for m in masks] == ["MultiBlockMaskGenerator", "FutureFrameMask"]
    assert masks[0].grid_size == masks[1].grid_size == (4, 12, 12)  # 16 x 96 x 96 clips, deepest stride 4 x 8 x 8
    assert masks[1].num_context == masks[1].num_target == 2 * 144
    # SIGReg's image-level embedding is the mean of the 384-d tokens (what inference.json exports), not the mean of
    # the deepest, instance-normalised map
    enc = parser.get_parsed_content("encoder", instantiate=True)
    assert enc.pooling == "tokens" and enc.pooled_dim == enc.embed_dim == 384


@pytest.mark.skipif(not SUNNYBROOK.is_dir(), reason="shared Sunnybrook data not available")
def test_preprocessing_on_sunnybrook(tmp_path):
    parser = ConfigParser()
    parser.read_config(CONFIGS / "train.json")
    parser.update({"dataset_dir": str(SUNNYBROOK), "output_dir": str(tmp_path), "cache": False})
    dataset = parser.get_parsed_content("train#dataset")
    clip = dataset[0]["image"]
    assert tuple(clip.shape) == (1, 16, 96, 96) and clip.dtype == torch.float32
    assert 0.0 <= float(clip.min()) and float(clip.max()) <= 1.1  # percentile-scaled, +-10% intensity jitter
    assert len(dataset) == len(json.loads((tmp_path / "datalist.json").read_text())["training"]) == 35


def test_multi_gpu_train_runs_on_cpu_with_gloo(tmp_path):
    out = tmp_path / "ddp"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2"]
    config = f"['{TRAIN}','bundles/cine_vjepa/configs/multi_gpu_train.json']"
    cmd = [*launcher, "-m", "monai.bundle", "run", "training", "--config_file", config, "--output_dir", str(out)]
    proc = subprocess.run(cmd + TINY + ["--demo_num_cases", "8"], cwd=REPO, env=bundle_env(), capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    # 5 training clips over 2 ranks (3 each), batches of 2, 2 epochs: 2 iterations; only rank 0 logs and saves
    assert len(re.findall(r"Epoch: \d/2, Iter: 1/1 -- ", log)) == 2 and log.count("NO REAL DATA") == 1, log[-3000:]
    assert (out / "models" / "checkpoint_latest.txt").read_text().strip() == "checkpoint_00000002.pt"
    state = torch.load(out / "models" / "model.pt", weights_only=True)
    assert state and not any(k.startswith("module.") for k in state)


def test_tiny_evaluation_regresses_the_clip_values(tmp_path):
    """evaluate.json: ridge probes of each clip's value (the demo's area ejection fraction, ``targets.csv``) on the
    frozen embeddings of the pretrained encoder and of its random-init twin, over label fractions."""
    out = tmp_path / "out"
    tiny = [*TINY[: TINY.index("--max_epochs")], "--max_epochs", "1", "--demo_num_cases", "6", "--output_dir", str(out)]
    train = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", TRAIN, *tiny]
    proc = subprocess.run(train, cwd=REPO, env=bundle_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    evaluate = [sys.executable, "-m", "monai.bundle", "run", "evaluating", "--config_file",
                f"['{TRAIN}','{CONFIGS / 'evaluate.json'}']", *tiny, "--eval_fractions", "[0.5,1.0]"]  # fmt: skip
    proc = subprocess.run(evaluate, cwd=REPO, env=bundle_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    records = json.loads((out / "eval" / "regression_metrics.json").read_text())
    datalist = json.loads((out / "datalist.json").read_text())
    assert {(r["method"], r["label_fraction"]) for r in records} == {
        (m, f) for m in ("pretrained", "random_init") for f in (0.5, 1.0)
    }
    assert all(r["target"] == "target" and r["n_labels"] <= len(datalist["training"]) for r in records)
    assert all(math.isfinite(r["mae"]) and r["mae"] >= 0 for r in records)
    pretrained = next(r for r in records if r["method"] == "pretrained" and r["label_fraction"] == 1.0)
    random_init = next(r for r in records if r["method"] == "random_init" and r["label_fraction"] == 1.0)
    assert pretrained["mae"] != random_init["mae"]  # two different encoders
    assert "| pretrained |" in (out / "eval" / "regression_report.md").read_text()
