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
"""The BraTS masked-latent (V-JEPA style) bundle: files, workflow properties, and a tiny end-to-end training run from
the repository root on synthetic demo data that writes only inside its output folder."""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from monai.networks.nets import UNet

from monai_jepa.networks import JEPASegmenter, JEPAViT, MaskedConvEncoder, load_pretrained_encoder
from tests.bundles._repo import bundle_env, find_artifacts

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "brats_vjepa"
CONFIGS = BUNDLE / "configs"
TRAIN, INFER = "bundles/brats_vjepa/configs/train.json", "bundles/brats_vjepa/configs/embed.json"
SEGMENT, SEG_INFER = "bundles/brats_vjepa/configs/segment.json", "bundles/brats_vjepa/configs/inference.json"
EVALUATE, VIT = "bundles/brats_vjepa/configs/evaluate.json", "bundles/brats_vjepa/configs/vit.json"
# tiny settings: 3 demo cases of 32^3, 16^3 crops, a 2-level UNet (4, 8 channels, one stride 2: 8^3 tokens of 2^3),
# a 1-block predictor, 2 epochs
TINY = [
    "--demo_num_cases", "3", "--demo_size", "[32,32,32]", "--roi_size", "[16,16,16]", "--channels", "[4,8]",
    "--strides", "[2]", "--predictor_depth", "1", "--predictor_dim", "24", "--max_epochs", "2", "--batch_size", "2",
    "--log_interval", "1", "--mask_block_scale", "[0.2,0.3]", "--num_mask_blocks", "1",
]  # fmt: skip
_ARTIFACT = re.compile(r"(events\.out\.tfevents.*|.*\.pt|checkpoint_latest\.txt|datalist\.json|.*\.nii\.gz)")
_SKIP_DIRS = {".git", "__pycache__", ".pytest_cache"}


def test_bundle_files():
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    for key in ("version", "monai_version", "pytorch_version", "numpy_version", "required_packages_version", "task"):
        assert meta.get(key), key
    assert meta["version"] in meta["changelog"]
    image = meta["network_data_format"]["inputs"]["image"]
    assert (image["modality"], image["num_channels"]) == ("MR", 4)
    for name in ("metadata", "train", "inference", "embed", "segment", "vit"):
        text = (CONFIGS / f"{name}.json").read_text()
        assert text == json.dumps(json.loads(text), indent=4) + "\n"
    assert (BUNDLE / "LICENSE").read_text() == (REPO / "LICENSE").read_text()
    assert "python -m monai.bundle run" in (BUNDLE / "docs" / "README.md").read_text()


def test_train_properties(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["monai.bundle", "run", "training", "--config_file", str(TRAIN)])
    from monai.bundle import ConfigWorkflow

    out = tmp_path / "out"
    wf = ConfigWorkflow(config_file=TRAIN, workflow_type="train", logging_file=False, output_dir=str(out))
    wf.initialize()
    assert wf.check_properties() == []
    assert Path(wf.bundle_root) == BUNDLE
    assert wf.parser["run"] == wf.parser["training"]
    default = ConfigWorkflow(config_file=TRAIN, workflow_type="train", logging_file=False)
    default.initialize()
    assert Path(default.parser.get_parsed_content("output_dir")) == BUNDLE / "outputs"
    infer = ConfigWorkflow(
        config_file=INFER, workflow_type="infer", logging_file=False, output_dir=str(out), load_pretrain=False
    )
    infer.initialize()
    assert infer.check_properties() == []
    assert infer.parser.get_parsed_content("checkpoint") == f"{out}/models/model.pt"
    # defaults: the segmentation UNet (4 sequences in, the 4 BraTS classes out) as a masked token encoder on 32^3
    # crops: its deepest level has stride 8 -> a 4x4x4 token grid, masks on that grid; tokens are the stride-8
    # (128 channels) and stride-4 (32 channels x 2^3) features, the predictor 192 wide
    # (built from the workflow with an output_dir: building the encoder resolves the data, writing the demo volumes)
    enc = wf.parser.get_parsed_content("encoder", instantiate=True)
    assert isinstance(enc, MaskedConvEncoder) and isinstance(enc.net, UNet)
    assert enc.net is wf.parser.get_parsed_content("segmentation_net_def")  # pretraining trains the segmentation net
    assert (enc.in_channels, enc.net.out_channels, list(enc.net.channels)) == (4, 4, [16, 32, 64, 128])
    assert enc.grid_size == (4, 4, 4) and enc.embed_dim == 128 + 32 * 8
    # the image-level embedding (SIGReg, probes, embed.json) is the mean of the tokens, not of the deepest map
    assert enc.pooling == "tokens" and enc.pooled_dim == enc.embed_dim
    assert infer.parser["pooling"] == wf.parser["pooling"] == "tokens" and infer.parser["encoder"]["pooling"] == "@pooling"
    masks = wf.parser.get_parsed_content("train#masks", instantiate=True)
    assert masks.grid_size == (4, 4, 4) and masks.span_axis0 is False
    predictor = wf.parser.get_parsed_content("predictor")
    assert predictor.embed_dim == enc.embed_dim and predictor.predictor_dim == 192


def test_tiny_training_run_from_repository_root(tmp_path):
    out = tmp_path / "out"
    before = find_artifacts(_ARTIFACT, _SKIP_DIRS)
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", TRAIN, "--output_dir", str(out), *TINY]
    proc = subprocess.run(cmd, cwd=REPO, env=bundle_env(), capture_output=True, text=True, timeout=240)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "SYNTHETIC" in log
    assert find_artifacts(_ARTIFACT, _SKIP_DIRS) == before  # nothing written outside output_dir
    assert len(list((out / "demo_data").glob("BraTS2021_*/*_flair.nii.gz"))) == 3
    losses = [float(v) for v in re.findall(r"loss: ([-+0-9.eE]+|nan|inf)", log)]
    assert losses and all(math.isfinite(v) for v in losses), log[-2000:]
    state = torch.load(out / "models" / "model.pt", weights_only=True)
    # the pretrained encoder's entries are a complete UNet (4 sequences in, 4 classes out): its first convolution
    assert tuple(state["encoder.net.model.0.conv.unit0.conv.weight"].shape) == (4, 4, 3, 3, 3)
    unet = load_pretrained_encoder(out / "models" / "model.pt", UNet(3, 4, 4, (4, 8), (2,), num_res_units=2),
                                   prefix="encoder.net.")  # fmt: skip
    assert all(torch.equal(v, state[f"encoder.net.{k}"]) for k, v in unet.state_dict().items())
    assert any(k.startswith("predictor.") for k in state)
    assert (out / "models" / "checkpoint_latest.txt").is_file() and list(out.glob("events.out.tfevents*"))

    # embeddings: pooled encoder features of the test cases, from the exported weights, named by case
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", INFER, "--output_dir", str(out), *TINY]
    proc = subprocess.run(cmd, cwd=REPO, env=bundle_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert find_artifacts(_ARTIFACT, _SKIP_DIRS) == before
    test_cases = [i["case_id"] for i in json.loads((out / "datalist.json").read_text())["test"]]
    feats = np.load(out / "embeddings" / "embeddings.npy")
    # the mean of the tokens: the tiny UNet has one stride, so its tokens are the deepest level's 8 channels
    assert feats.shape == (len(test_cases), 8) and np.isfinite(feats).all()
    with open(out / "embeddings" / "embeddings.csv") as f:
        assert [row["id"] for row in csv.DictReader(f)] == test_cases


def test_vit_overlay(tmp_path):
    """configs/vit.json, given last, restores the 3D ViT encoder and the JEPASegmenter in every workflow."""
    from monai.bundle import ConfigWorkflow

    out = tmp_path / "vit"
    tiny = {"demo_num_cases": 3, "demo_size": [32, 32, 32], "roi_size": [16, 16, 16], "num_layers": 1,
            "hidden_size": 24, "predictor_dim": 24, "predictor_depth": 1, "max_epochs": 1, "batch_size": 2,
            "mask_block_scale": [0.2, 0.3], "num_mask_blocks": 1, "seg_feature_size": 4,
            "output_dir": str(out)}  # fmt: skip

    def workflow(configs, workflow_type, **extra):
        return ConfigWorkflow(config_file=configs, workflow_type=workflow_type, logging_file=False, **tiny, **extra)

    train = workflow([TRAIN, VIT], "train")
    train.initialize()
    assert train.check_properties() == []
    enc = train.parser.get_parsed_content("encoder")
    assert isinstance(enc, JEPAViT) and enc.grid_size == (2, 2, 2) and enc.in_channels == 4  # 8^3 patches
    assert train.parser.get_parsed_content("train#masks").grid_size == (2, 2, 2)
    train.run()
    train.finalize()
    state = torch.load(out / "models" / "model.pt", weights_only=True)
    assert tuple(state["encoder.patch_embedding.patch_embeddings.weight"].shape) == (24, 4, 8, 8, 8)

    def is_pretrained(vit):
        return all(torch.equal(v, state[f"encoder.{k}"]) for k, v in vit.state_dict().items())

    # segmentation fine-tuning starts from the pretrained ViT inside a JEPASegmenter
    seg = workflow([TRAIN, SEGMENT, VIT], "train").parser.get_parsed_content("seg_network_def")
    assert isinstance(seg, JEPASegmenter) and seg.out_channels == 4 and is_pretrained(seg.encoder)
    # inference: the JEPASegmenter; embeddings: the pretrained ViT
    for config, kind in ((SEG_INFER, JEPASegmenter), (INFER, JEPAViT)):
        wf = workflow([config, VIT], "infer", load_pretrain=False)
        wf.initialize()
        assert wf.check_properties() == [] and isinstance(wf.parser.get_parsed_content("network_def"), kind)
    assert is_pretrained(workflow([INFER, VIT], "infer").parser.get_parsed_content("network_def"))
    # evaluation: pretrained ViT, the same ViT from scratch, and the MONAI UNet from scratch
    factories = workflow([TRAIN, EVALUATE, VIT], None).parser.get_parsed_content("eval_seg_networks")
    assert list(factories) == ["vit_vjepa", "vit_scratch", "unet_scratch"]
    pretrained, scratch, unet = (f() for f in factories.values())
    assert is_pretrained(pretrained.encoder) and not is_pretrained(scratch.encoder)
    assert isinstance(unet, UNet) and unet.out_channels == 4


def test_embed_preprocessing_matches_training(tmp_path):
    """embed.json prepares a case exactly as training does (crop to the non-zero box, then z-score on non-zero voxels):
    the same tensor as the library's volume_preprocessing at the same size. The case's intensity rises along the first
    axis inside its non-zero box, so a crop made after the z-scoring (where the dark side turns negative) would cut
    the box."""
    import nibabel as nib
    from monai.bundle import ConfigParser

    from monai_jepa.data import volume_preprocessing

    vol = np.zeros((32, 30, 28), np.float32)
    vol[4:28, 3:27, 2:26] = np.linspace(1.0, 10.0, 24, dtype=np.float32)[:, None, None]
    files = []
    for i, seq in enumerate(("t1", "t1ce", "t2", "flair")):
        files.append(str(tmp_path / f"case_{seq}.nii.gz"))
        nib.save(nib.Nifti1Image(vol * (i + 1), np.eye(4)), files[-1])
    parser = ConfigParser()
    parser.read_config(REPO / INFER)
    parser["roi_size"] = [24, 24, 24]
    embed = parser.get_parsed_content("preprocessing")({"image": files})["image"]
    train = volume_preprocessing((24, 24, 24), "mri", label=False)({"image": files})["image"]
    assert embed.shape == (4, 24, 24, 24) and torch.allclose(torch.as_tensor(embed), train, atol=1e-5)


def _nifti_cases(folder: Path, n: int = 5, size: int = 32) -> list[Path]:
    import nibabel as nib

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        paths.append(folder / f"case_{i:02d}.nii.gz")
        nib.save(nib.Nifti1Image(rng.random((size,) * 3, dtype=np.float32) * 100, np.eye(4)), str(paths[-1]))
    return paths


def test_bad_case_stops_the_run_before_anything_is_written(tmp_path):
    """Validation before training: a truncated volume anywhere in the datalist (here possibly in a split that
    pretraining never reads) stops the run with one line naming the file, exit 1, and no output folder; with
    ``--skip_bad True`` the case is dropped, listed in ``invalid_cases.json`` and training goes on."""
    paths = _nifti_cases(tmp_path / "data")
    good = tmp_path / "good_out"  # first, all good: validated, trained, the cache written into the new output folder
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", TRAIN, "--dataset_dir", str(tmp_path / "data"),
           "--output_dir", str(good), *TINY]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=bundle_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert len(json.loads((good / "validation_cache.json").read_text())["passed"]) == 5
    paths[3].write_bytes(paths[3].read_bytes()[:2000])
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", TRAIN, "--dataset_dir", str(tmp_path / "data"),
           "--output_dir", str(out), *TINY]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=bundle_env(MONAI_JEPA_DEBUG=""), capture_output=True, text=True,
                          timeout=240)  # fmt: skip
    assert proc.returncode == 1, (proc.stdout + proc.stderr)[-3000:]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-2].startswith(f"error: UnreadableFileError: {paths[3]}: cannot read nifti file")
    assert not out.exists()
    proc = subprocess.run([*cmd, "--skip_bad", "True"], cwd=REPO, env=bundle_env(), capture_output=True, text=True,
                          timeout=240)  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    report = json.loads((out / "invalid_cases.json").read_text())
    assert (report["checked"], report["ok"], report["skipped"][0]["path"]) == (5, 4, str(paths[3]))
    datalist = json.loads((out / "datalist.json").read_text())
    kept = [i["image"] for s in ("training", "validation", "test") for i in datalist[s]]
    assert len(kept) == 4 and not any(str(paths[3]).endswith(k) for k in kept)
    assert (out / "models" / "model.pt").is_file()
    # the cache of checked cases: a rerun decodes only what changed (the cache names no case that failed)
    cache = json.loads((out / "validation_cache.json").read_text())
    assert cache["version"] == 1 and len(cache["passed"]) == 4
