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
"""The BraTS bundle's segmentation workflows: a tiny pretrain -> segment -> inference pipeline from the repository
root on synthetic demo data (metrics, weights, NIfTI label maps aligned with their inputs, nothing written outside the
output folder), the inference workflow's properties and ``verify_net_in_out``."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from monai.networks.nets import UNet

from tests.bundles._repo import bundle_env, find_artifacts

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "bundles" / "brats_vjepa" / "configs"
TRAIN, SEGMENT = "bundles/brats_vjepa/configs/train.json", "bundles/brats_vjepa/configs/segment.json"
INFER, EMBED = "bundles/brats_vjepa/configs/inference.json", "bundles/brats_vjepa/configs/embed.json"
META = "bundles/brats_vjepa/configs/metadata.json"
SEQUENCES = ("t1", "t1ce", "t2", "flair")
# tiny settings: 4 demo cases of 32^3 (2 training, 1 validation, 1 test), 16^3 crops, a 2-level UNet (4, 8 channels,
# one stride 2: 8^3 tokens of 2^3), a 1-block predictor; segmentation on 1 labelled case for 2 epochs
TINY = [
    "--demo_num_cases", "4", "--demo_size", "[32,32,32]", "--volume_size", "[32,32,32]", "--roi_size", "[16,16,16]",
    "--channels", "[4,8]", "--strides", "[2]", "--predictor_depth", "1", "--predictor_dim", "24", "--max_epochs", "1",
    "--batch_size", "2", "--mask_block_scale", "[0.2,0.3]", "--num_mask_blocks", "1",
]  # fmt: skip
TINY_SEG = ["--seg_max_epochs", "2", "--seg_num_labelled", "1", "--seg_batch_size", "1"]
TINY_INFER = TINY  # the same UNet
_ARTIFACT = re.compile(r"(events\.out\.tfevents.*|.*\.pt|checkpoint_latest\.txt|(datalist|metrics)\.json|.*\.nii\.gz)")
_SKIP_DIRS = {".git", "__pycache__", ".pytest_cache", "benchmarks"}  # benchmarks/: results of other runs


def _run(*args: str, timeout: int = 180) -> str:
    cmd = [sys.executable, "-m", "monai.bundle", *args]
    proc = subprocess.run(cmd, cwd=REPO, env=bundle_env(), capture_output=True, text=True, timeout=timeout)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    return log


def _overrides(args: list[str]) -> dict:
    """Command-line overrides (``--key value`` pairs of JSON values) as keyword arguments of ``ConfigWorkflow``."""
    return {k.lstrip("-"): json.loads(v) for k, v in zip(args[::2], args[1::2])}


def _write_flipped_case(src: Path, case: str, dst_root: Path) -> Path:
    """Copy the four sequences of ``case`` with the first two voxel axes reversed and the affine compensated: the same
    anatomy stored in LPS order instead of RAS."""
    folder = dst_root / "BraTS2021_09999"
    folder.mkdir(parents=True)
    for seq in SEQUENCES:
        img = nib.load(src / case / f"{case}_{seq}.nii.gz")
        reverse = np.diag([-1.0, -1.0, 1.0, 1.0])
        reverse[:2, 3] = np.asarray(img.shape[:2]) - 1
        data = np.ascontiguousarray(np.asarray(img.dataobj)[::-1, ::-1])
        nib.save(nib.Nifti1Image(data, img.affine @ reverse), folder / f"BraTS2021_09999_{seq}.nii.gz")
    return folder


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("brats_segment")
    out = tmp / "out"
    before = find_artifacts(_ARTIFACT, _SKIP_DIRS)
    _run("run", "training", "--config_file", TRAIN, "--output_dir", str(out), *TINY)
    config = f"['{TRAIN}','{SEGMENT}']"
    seg_log = _run("run", "segmenting", "--config_file", config, "--output_dir", str(out), *TINY, *TINY_SEG)
    _run("run", "--config_file", INFER, "--output_dir", str(out), *TINY_INFER)
    datalist = json.loads((out / "datalist.json").read_text())
    # the test case again, stored in another orientation, given as a folder through `input_files`
    flipped = _write_flipped_case(out / "demo_data", datalist["test"][0]["case_id"], tmp / "flipped")
    out2 = tmp / "out2"
    checkpoint = str(out / "models" / "seg_model.pt")
    _run("run", "--config_file", INFER, "--output_dir", str(out2), "--input_files", str(flipped.parent), "--checkpoint",
         checkpoint, *TINY_INFER)  # fmt: skip
    return {"out": out, "out2": out2, "flipped": flipped, "datalist": datalist, "seg_log": seg_log, "before": before}


def test_segment_metrics(pipeline):
    out, datalist = pipeline["out"], pipeline["datalist"]
    metrics = json.loads((out / "segment" / "metrics.json").read_text())
    names = ["necrotic tumour core (NCR)", "peritumoral oedema (ED)", "enhancing tumour (ET)"]
    assert metrics["label_values"] == [0, 1, 2, 4]
    assert list(metrics["dice"]) == names and list(metrics["hd95"]) == names
    assert math.isfinite(metrics["mean_dice"]) and 0.0 <= metrics["mean_dice"] <= 1.0
    dice = [v for v in metrics["dice"].values() if v is not None]
    assert dice and all(0.0 <= v <= 1.0 for v in dice)
    assert metrics["mean_dice"] == pytest.approx(np.mean(dice), abs=1e-6)
    hd95 = [v for v in metrics["hd95"].values() if v is not None]
    assert all(math.isfinite(v) and 0.0 <= v <= math.sqrt(3) * 32 for v in hd95)
    assert metrics["mean_hd95"] is None if not hd95 else metrics["mean_hd95"] == pytest.approx(np.mean(hd95), abs=1e-4)
    # seg_num_labelled=1 of the 2 training cases; validation on the validation split; best of 2 epochs
    assert metrics["num_labelled_cases"] == 1 and len(datalist["training"]) == 2
    assert metrics["num_validation_cases"] == len(datalist["validation"]) == 1
    assert metrics["epochs"] == 2 and 1 <= metrics["best_epoch"] <= 2
    assert metrics["pretrained_encoder"] == str(out / "models" / "model.pt")
    assert "val_mean_dice" in pipeline["seg_log"] and "val_hd95" in pipeline["seg_log"]


def test_seg_model_weights(pipeline):
    from monai.bundle import ConfigWorkflow

    out = pipeline["out"]
    state = torch.load(out / "models" / "seg_model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    # the inference network (same architecture overrides) takes the weights as they are
    overrides = _overrides(TINY_INFER)
    overrides["output_dir"] = str(out)
    wf = ConfigWorkflow(config_file=str(REPO / INFER), workflow_type="infer", logging_file=False, **overrides)
    net = wf.parser.get_parsed_content("network_def")
    assert isinstance(net, UNet)
    net.load_state_dict(state, strict=True)
    x = torch.rand(1, 4, 16, 16, 16)
    assert net.eval()(x).shape == (1, 4, 16, 16, 16)


def test_segment_loads_the_pretrained_encoder(pipeline, tmp_path):
    from monai.bundle import ConfigWorkflow

    out = pipeline["out"]
    pretrained = torch.load(out / "models" / "model.pt", weights_only=True)
    overrides = _overrides(TINY)
    overrides.update(output_dir=str(tmp_path), model_file=str(out / "models" / "model.pt"))
    configs = [str(REPO / TRAIN), str(REPO / SEGMENT)]
    for load in (True, False):
        wf = ConfigWorkflow(
            config_file=configs, workflow_type="train", logging_file=False, seg_load_pretrained=load, **overrides
        )
        net = wf.parser.get_parsed_content("seg_network_def")
        assert isinstance(net, UNet) and net.out_channels == 4
        # every entry of the UNet (the encoder path trained by pretraining, the decoder as initialised there)
        unet = net.state_dict()
        same = [torch.equal(unet[k], pretrained[f"encoder.net.{k}"]) for k in unet if f"encoder.net.{k}" in pretrained]
        assert len(same) == len(unet) and (all(same) if load else not all(same))
        assert wf.parser.get_parsed_content("seg_label_values") == [0, 1, 2, 4]


def test_inference_label_maps_match_their_inputs(pipeline):
    out, datalist = pipeline["out"], pipeline["datalist"]
    written = sorted((out / "inference").glob("*.nii.gz"))
    assert [p.name for p in written] == [f"{i['case_id']}_t1_seg.nii.gz" for i in datalist["test"]]
    for item, path in zip(datalist["test"], written):
        image = nib.load(out / "demo_data" / item["image"][0])
        seg = nib.load(path)
        assert seg.shape == image.shape and np.allclose(seg.affine, image.affine)
        values = np.asarray(seg.dataobj)
        assert seg.get_data_dtype() == np.uint8 and set(np.unique(values)) <= {0, 1, 2, 4}
        # voxels outside the brain's bounding box are background (the crop is undone by padding)
        brain = np.argwhere(np.asarray(image.dataobj) > 0)
        lo, hi = brain.min(0), brain.max(0) + 1
        outside = np.ones(values.shape, bool)
        outside[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = False
        assert not values[outside].any()


def test_inference_on_a_reoriented_input_folder(pipeline):
    out, out2, flipped = pipeline["out"], pipeline["out2"], pipeline["flipped"]
    case = pipeline["datalist"]["test"][0]["case_id"]
    assert not (out2 / "demo_data").exists()  # user inputs: no demo data are written
    seg = nib.load(out2 / "inference" / "BraTS2021_09999_t1_seg.nii.gz")
    image = nib.load(flipped / "BraTS2021_09999_t1.nii.gz")
    assert nib.aff2axcodes(image.affine) == ("L", "P", "S")
    assert seg.shape == image.shape and np.allclose(seg.affine, image.affine)
    # the network sees the same RAS volume, so the label map is the RAS one stored in the input's order
    ras = np.asarray(nib.load(out / "inference" / f"{case}_t1_seg.nii.gz").dataobj)
    np.testing.assert_array_equal(np.asarray(seg.dataobj), ras[::-1, ::-1])


def test_nothing_written_outside_output_dir(pipeline):
    assert not find_artifacts(_ARTIFACT, _SKIP_DIRS) - pipeline["before"]


def test_inference_properties(tmp_path):
    from monai.bundle import ConfigWorkflow

    overrides = {"demo_num_cases": 3, "demo_size": [32, 32, 32], "output_dir": str(tmp_path), "load_pretrain": False}
    for config, checkpoint in ((INFER, "seg_model.pt"), (EMBED, "model.pt")):
        wf = ConfigWorkflow(config_file=str(REPO / config), workflow_type="infer", logging_file=False, **overrides)
        wf.initialize()
        assert wf.check_properties() == []
        assert wf.parser.get_parsed_content("checkpoint") == f"{tmp_path}/models/{checkpoint}"


def test_verify_net_in_out():
    log = _run("verify_net_in_out", "network_def", "--meta_file", META, "--config_file", INFER, "--device", "cpu")
    assert "verified with no error" in log
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    pred = meta["network_data_format"]["outputs"]["pred"]
    labels = json.loads((CONFIGS / "inference.json").read_text())["label_values"]
    assert pred["num_channels"] == len(pred["channel_def"]) == len(labels) == 4
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta["version"]) and meta["version"] in meta["changelog"]


def test_config_files_are_formatted():
    for name in ("segment", "inference", "embed", "metadata", "vit"):
        text = (CONFIGS / f"{name}.json").read_text()
        assert text == json.dumps(json.loads(text), indent=4) + "\n", name


@pytest.mark.filterwarnings("ignore")
def test_inference_on_a_dicom_study_writes_a_dicom_seg(tmp_path):
    """inference.json on a DICOM folder (sequences stacked as channels by series description): besides the NIfTI
    label map, a DICOM SEG that references the first sequence's series, with its frame of reference and study, one
    frame per source slice and segment, named by the case id (no header value in the name)."""
    hd = pytest.importorskip("highdicom")
    tcia = REPO / ".." / "shared" / "data" / "tcia_brain_tumor_progression"
    if not tcia.is_dir():
        pytest.skip(f"{tcia} is not available")
    out = tmp_path / "out"
    _run("run", "--config_file", INFER, "--dataset_dir", str(tcia), "--output_dir", str(out), "--load_pretrain",
         "False", "--dicom_sequences", "['T1pre','T1post','FLAIR','T2']", "--max_items", "1", timeout=300)  # fmt: skip
    seg_file = out / "inference" / "patient_001_study_1_seg.dcm"
    seg = hd.seg.segread(seg_file)
    t1 = sorted(next(tcia.glob("*/*T1prereg*")).glob("*.dcm"))
    source = pydicom.dcmread(t1[0], stop_before_pixels=True)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    assert (seg.FrameOfReferenceUID, seg.StudyInstanceUID) == (source.FrameOfReferenceUID, source.StudyInstanceUID)
    labels = json.loads((CONFIGS / "inference.json").read_text())["class_names"]
    assert [s.SegmentLabel for s in seg.SegmentSequence] == labels
    assert int(seg.NumberOfFrames) == len(t1) * len(labels)  # binary SEG: every slice of every segment
    nifti = nib.load(str(next((out / "inference").glob("*_seg.nii.gz"))))
    assert nifti.shape == (int(source.Columns), int(source.Rows), len(t1))


def test_segment_augmentation_moves_image_and_label_together():
    """segment.json's rotation / scaling acts on image and label alike (nearest for the label) and its gamma on the
    image only: the warped label keeps its values and still marks the bright voxels."""
    from monai.bundle import ConfigParser

    steps = json.loads((CONFIGS / "segment.json").read_text())["segment"]["train_transforms"]
    names = [s["_target_"] for s in steps]
    assert names.index("RandCropByPosNegLabeld") < names.index("RandAffined") < names.index("RandAdjustContrastd")
    affine = ConfigParser({"t": {**steps[names.index("RandAffined")], "prob": 1.0}}).get_parsed_content("t")
    gamma = ConfigParser({"t": {**steps[names.index("RandAdjustContrastd")], "prob": 1.0}}).get_parsed_content("t")
    label = torch.zeros(1, 24, 24, 24)
    label[:, 6:18, 8:16, 5:19] = 1
    moved = []
    for seed in range(3):
        affine.set_random_state(seed)
        out = gamma(affine({"image": torch.cat([label * 2.0, label - 1.0]), "label": label.clone()}))
        lab, img = torch.as_tensor(out["label"]), torch.as_tensor(out["image"])
        assert set(lab.unique().tolist()) <= {0.0, 1.0} and img.shape == (2, 24, 24, 24)
        assert img[0][lab[0] == 1].mean() > img[0][lab[0] == 0].mean() + 1.0
        moved.append(not torch.equal(lab, label))
    assert all(moved)
