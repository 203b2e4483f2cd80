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
"""The chest X-ray LeJEPA bundle: metadata, properties, the documented commands run from the repository root (with tiny
settings), multi-process training on CPU, export, and the image sources it relies on."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from monai_jepa.networks import ProbeHead
from tests.bundles._repo import bundle_env
from tests.data.test_sources import _write_png

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "cxr_lejepa"
CONFIGS = BUNDLE / "configs"
TRAIN, EVALUATE = "bundles/cxr_lejepa/configs/train.json", "bundles/cxr_lejepa/configs/evaluate.json"
INFER, MULTI_GPU = "bundles/cxr_lejepa/configs/inference.json", "bundles/cxr_lejepa/configs/multi_gpu_train.json"
META = "bundles/cxr_lejepa/configs/metadata.json"
PNEUMONIA = REPO / ".." / "shared" / "data" / "pneumoniamnist" / "pneumoniamnist.npz"
CR_DICOM = REPO / ".." / "shared" / "data" / "dicom_samples" / "RG1_UNCR.dcm"
# tiny settings shared by every run: 32 demo images of 32x32, batches of 8, one epoch
TINY = ["--image_size", "32", "--batch_size", "8", "--max_items", "32", "--max_epochs", "1", "--num_workers", "0"]
EVAL_TINY = [
    "--eval_protocols", "['linear','knn','few_shot','label_fraction','fine_tune','random_init']",
    "--eval_label_fractions", "[0.5,1.0]", "--eval_shots", "[2]", "--eval_seeds", "[0]", "--eval_episodes", "1",
    "--eval_finetune_fractions", "[1.0]", "--eval_finetune_epochs", "1",
]  # fmt: skip
# files the bundle writes: none of them may appear outside the output folder
_ARTIFACT = re.compile(
    r"(events\.out\.tfevents.*|.*\.pt|.*\.ts|metrics\.json|report\.md|label_efficiency\.png|embeddings\.(npy|csv)"
    r"|probabilities\.csv|checkpoint_latest\.txt)"
)
_SKIP_DIRS = {".git", "__pycache__", ".pytest_cache"}


def _bundle_cmd(*args: str, timeout: int = 300, launcher: tuple[str, ...] = ()) -> str:
    """Run ``python [launcher] -m monai.bundle args`` from the repository root; return stdout + stderr."""
    cmd = [sys.executable, *launcher, "-m", "monai.bundle", *args]
    proc = subprocess.run(cmd, cwd=REPO, env=bundle_env(), capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{out[-4000:]}"
    return out


def _snapshot() -> tuple[set[str], dict[str, int], set[str]]:
    """Top-level names of the repository, every file of the bundle folder, and bundle-style artifacts anywhere."""
    bundle = {
        str(p.relative_to(BUNDLE)): p.stat().st_mtime_ns
        for p in BUNDLE.rglob("*")
        if p.is_file() and not _SKIP_DIRS & set(p.parts)
    }
    artifacts = set()
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS]
        artifacts |= {os.path.join(root, f) for f in files if _ARTIFACT.fullmatch(f)}
    return set(os.listdir(REPO)), bundle, artifacts


def _workflow(config_file, workflow_type: str, **override):
    from monai.bundle import ConfigWorkflow

    return ConfigWorkflow(config_file=config_file, workflow_type=workflow_type, logging_file=False, **override)


# ---------------------------------------------------------------------------------------------------- bundle files


def test_metadata_has_the_mandatory_model_zoo_keys():
    import monai_jepa

    meta = json.loads((CONFIGS / "metadata.json").read_text())
    mandatory = ("version", "monai_version", "pytorch_version", "numpy_version", "required_packages_version", "task")
    for key in (*mandatory, "description", "authors", "copyright", "network_data_format", "changelog"):
        assert meta.get(key), key
    assert meta["version"] in meta["changelog"]
    assert meta["schema"].endswith("/meta_schema_20240725.json")
    assert meta["required_packages_version"]["monai_jepa"] == monai_jepa.__version__
    image, pred = meta["network_data_format"]["inputs"]["image"], meta["network_data_format"]["outputs"]["pred"]
    fields = ("type", "format", "num_channels", "spatial_shape", "dtype", "value_range", "is_patch_data", "channel_def")
    assert all(k in image and k in pred for k in fields) and image["modality"] == "XR"
    assert (image["num_channels"], image["spatial_shape"], pred["num_channels"]) == (1, [64, 64], 512)
    for name in ("PneumoniaMNIST", "ChestX-ray14", "CheXpert", "MIMIC-CXR-JPG"):
        assert name in meta["data_licenses"]
    assert (BUNDLE / "LICENSE").read_text() == (REPO / "LICENSE").read_text()


@pytest.mark.parametrize("name", ["metadata", "train", "evaluate", "inference", "multi_gpu_train"])
def test_configs_are_four_space_json(name):
    text = (CONFIGS / f"{name}.json").read_text()
    assert text == json.dumps(json.loads(text), indent=4) + "\n"


def test_logging_conf_uses_only_logging_classes():
    text = (CONFIGS / "logging.conf").read_text()
    classes = re.findall(r"^class\s*=\s*(\S+)", text, flags=re.M)
    assert classes and all(c in vars(logging) or c.startswith("logging.") for c in classes)


def test_train_and_inference_properties(tmp_path, monkeypatch):
    # as `python -m monai.bundle run ... --config_file bundles/cxr_lejepa/configs/train.json` from the repository root
    monkeypatch.setattr(sys, "argv", ["monai.bundle", "run", "training", "--config_file", str(TRAIN)])
    out = str(tmp_path / "out")
    train = _workflow(TRAIN, "train", output_dir=out, max_items=16, image_size=32)
    train.initialize()
    assert train.check_properties() == []
    # the bundle folder, not the current directory (the repository root here)
    assert Path(train.bundle_root) == BUNDLE
    assert train.parser["run"] == train.parser["training"]  # "run" (Model Zoo, MONAI Label) is "training"
    infer = _workflow(INFER, "infer", output_dir=out, max_items=16, image_size=32, load_pretrain=False)
    infer.initialize()
    assert infer.check_properties() == []
    assert Path(infer.bundle_root) == BUNDLE
    # no training output yet: the released weights; once trained: the run's own weights
    assert infer.parser.get_parsed_content("checkpoint") == f"{BUNDLE}/models/model.pt"
    Path(out, "models").mkdir(parents=True, exist_ok=True)
    Path(out, "models", "model.pt").write_bytes(b"")
    again = _workflow(INFER, "infer", output_dir=out, max_items=16, image_size=32, load_pretrain=False)
    again.initialize()
    assert again.parser.get_parsed_content("checkpoint") == f"{out}/models/model.pt"
    default = _workflow(TRAIN, "train")
    default.initialize()
    assert Path(default.parser.get_parsed_content("output_dir")) == BUNDLE / "outputs"


# ---------------------------------------------------------------------------------------------------- pipeline


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Training, evaluation and inference run from the repository root with the documented commands."""
    out = tmp_path_factory.mktemp("cxr_lejepa") / "out"
    before = _snapshot()
    logs = {
        "training": _bundle_cmd(
            "run", "training", "--config_file", TRAIN, "--output_dir", str(out), "--log_interval", "2", *TINY
        ),
        "evaluating": _bundle_cmd(
            "run", "evaluating", "--config_file", f"['{TRAIN}','{EVALUATE}']", "--output_dir", str(out), *TINY,
            *EVAL_TINY,
        ),
        "inference": _bundle_cmd("run", "--config_file", INFER, "--output_dir", str(out), "--image_size", "32",
                                 "--max_items", "32"),
    }  # fmt: skip
    after = _snapshot()
    return out, logs, before, after


def test_pipeline_writes_nothing_outside_output_dir(pipeline):
    _, _, (top0, bundle0, art0), (top1, bundle1, art1) = pipeline
    assert top1 == top0
    assert bundle1 == bundle0
    assert art1 - art0 == set()


def test_training_outputs(pipeline):
    out, logs, _, _ = pipeline
    assert "NO REAL DATA" in logs["training"] and "SYNTHETIC" in logs["training"]
    # 32 images, batches of 8, drop_last: 4 iterations; the stats handler logs every 2nd iteration
    assert (out / "models" / "checkpoint_latest.txt").read_text().strip() == "checkpoint_00000004.pt"
    assert len(re.findall(r"Iter: \d+/4 -- .*loss: [0-9.]+", logs["training"])) == 2
    assert list(out.glob("events.out.tfevents.*"))
    state = torch.load(out / "models" / "model.pt", weights_only=True)
    ckpt = torch.load(out / "models" / "checkpoint_00000004.pt", weights_only=True)
    assert state.keys() == ckpt["model"].keys()
    assert all(torch.equal(state[k], ckpt["model"][k]) for k in state)


def test_evaluation_metrics(pipeline):
    out, _, _, _ = pipeline
    records = json.loads((out / "eval" / "metrics.json").read_text())
    assert {r["protocol"] for r in records} >= {"linear", "knn", "few_shot", "fine_tune"}
    assert {r["method"] for r in records} == {"lejepa", "random_init"}
    assert all(r["dataset"] == "demo" and math.isfinite(r["auc"]) and 0 <= r["auc"] <= 1 for r in records)
    assert (out / "eval" / "report.md").is_file() and (out / "eval" / "label_efficiency.png").is_file()
    head = ProbeHead.from_file(out / "models" / "probe_head.pt")
    assert head.task == "binary" and head.linear.weight.shape == (1, 512)


def test_inference_outputs(pipeline):
    out, _, _, _ = pipeline
    emb = np.load(out / "inference" / "embeddings.npy")
    assert emb.shape == (16, 512) and np.isfinite(emb).all()  # the demo test split is half of the 32 images
    with open(out / "inference" / "embeddings.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0][:3] == ["id", "label", "f0"] and len(rows) == 17
    assert np.allclose(np.asarray(rows[1][2:], dtype=np.float32), emb[0], rtol=1e-4, atol=1e-5)
    with open(out / "inference" / "probabilities.csv") as f:
        probs = list(csv.DictReader(f))
    p = np.asarray([float(r["p_1"]) for r in probs])
    assert len(p) == 16 and ((p >= 0) & (p <= 1)).all()
    head = ProbeHead.from_file(out / "models" / "probe_head.pt")
    assert np.allclose(p, head(torch.from_numpy(emb))[:, 0].detach().numpy(), atol=1e-5)


def test_verify_net_in_out_and_torchscript_export(pipeline, tmp_path):
    from monai.bundle import ckpt_export, verify_net_in_out

    out, _, _, _ = pipeline
    verify_net_in_out(net_id="network_def", meta_file=META, config_file=INFER)  # raises on a mismatch
    ts = tmp_path / "model.ts"
    ckpt_export(
        net_id="network_def",
        filepath=str(ts),
        ckpt_file=str(out / "models" / "model.pt"),
        meta_file=META,
        config_file=INFER,
        image_size=32,
        use_trace=True,
        input_shape=[1, 1, 32, 32],
    )
    scripted = torch.jit.load(str(ts))
    from monai_jepa.networks import build_lejepa_model

    net = build_lejepa_model("resnet18", 2, 1, proj_out_dim=64, conv1_t_size=3, conv1_t_stride=2, no_max_pool=True)
    net.load_state_dict(torch.load(out / "models" / "model.pt", weights_only=True))
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():  # the exported network is the embedding network: the encoder's pooled features
        assert scripted(x).shape == (3, 512) and torch.allclose(scripted(x), net.eval().embed(x), atol=1e-4)


def test_multi_gpu_train_runs_on_cpu_with_gloo(tmp_path):
    out = tmp_path / "ddp"
    launcher = ("-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2")
    overrides = ["--output_dir", str(out), "--log_interval", "1", *TINY[:2], "--batch_size", "4", *TINY[4:]]
    log = _bundle_cmd("run", "training", "--config_file", f"['{TRAIN}','{MULTI_GPU}']", *overrides, launcher=launcher)
    # 32 images over 2 ranks, batches of 4: 4 iterations per rank; only rank 0 logs, writes events and weights
    assert (out / "models" / "checkpoint_latest.txt").read_text().strip() == "checkpoint_00000004.pt"
    assert len(re.findall(r"Iter: \d+/4 -- ", log)) == 4
    assert len(list(out.glob("events.out.tfevents.*"))) == 1
    state = torch.load(out / "models" / "model.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in state)


@pytest.mark.skipif(not PNEUMONIA.is_file(), reason="PneumoniaMNIST not available (../shared/data)")
def test_training_on_pneumoniamnist(tmp_path):
    out = tmp_path / "pneu"
    overrides = dict(image_size=32, batch_size=16, max_items=64, max_epochs=1, checkpoint_interval=2)
    wf = _workflow(TRAIN, "train", dataset_dir=str(PNEUMONIA), output_dir=str(out), **overrides)
    wf.initialize()
    source = wf.parser.get_parsed_content("train#source")
    info = source.info
    assert (info["source"], info["name"], info["is_synthetic"]) == ("medmnist", "pneumoniamnist", False)
    wf.run()
    wf.finalize()
    assert (out / "models" / "checkpoint_latest.txt").read_text().strip() == "checkpoint_00000004.pt"
    assert (out / "models" / "model.pt").is_file()


def test_inference_preprocessing_loads_a_file(tmp_path):
    from monai.bundle import ConfigParser

    _write_png(tmp_path / "x.png", size=(30, 20), rgb=True)
    parser = ConfigParser()
    parser.read_config(CONFIGS / "inference.json")
    item = parser.get_parsed_content("preprocessing")({"image": str(tmp_path / "x.png")})
    assert type(item["image"]) is torch.Tensor and item["image"].shape == (1, 64, 64)
    assert float(item["image"].min()) == 0.0 and float(item["image"].max()) == 1.0


def test_truncated_png_stops_the_run_before_anything_is_written(tmp_path):
    """Validation before training: a truncated PNG stops the run with one line naming it, exit 1, no output folder;
    ``--skip_bad True`` drops it, lists it in ``invalid_images_training.json`` and trains on the rest."""
    data = tmp_path / "data"
    data.mkdir()
    paths = [data / f"img_{i:02d}.png" for i in range(16)]
    for i, p in enumerate(paths):
        _write_png(p, seed=i)
    with open(data / "labels.csv", "w") as f:  # every image in the training split
        f.write("image,label,split\n" + "".join(f"{p.name},{i % 2},training\n" for i, p in enumerate(paths)))
    paths[5].write_bytes(paths[5].read_bytes()[:300])
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", TRAIN, "--dataset_dir", str(data),
           "--output_dir", str(out), *TINY]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=bundle_env(MONAI_JEPA_DEBUG=""), capture_output=True, text=True,
                          timeout=240)  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, (proc.stdout + proc.stderr)[-3000:]
    assert proc.stderr.splitlines()[-2] == (
        f"error: UnreadableFileError: {paths[5]}: cannot read png file (OSError: image file is truncated)."
    )
    assert not out.exists()
    proc = subprocess.run([*cmd, "--skip_bad", "True"], cwd=REPO, env=bundle_env(), capture_output=True, text=True,
                          timeout=240)  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    report = json.loads((out / "invalid_images_training.json").read_text())
    assert (report["checked"], report["ok"], report["skipped"][0]["path"]) == (16, 15, str(paths[5]))
    assert (out / "models" / "model.pt").is_file()
