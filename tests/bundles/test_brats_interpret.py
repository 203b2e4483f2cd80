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
"""configs/interpret.json: predictor error maps of the pretrained model, written as NIfTI on each input's own grid (the
scanner space of the scan) and as PNG overlays, named by the pseudonymous case id; the ViT overlay's attention maps."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.bundles._repo import bundle_env, find_artifacts

nib = pytest.importorskip("nibabel")

REPO = Path(__file__).resolve().parents[2]
C = "bundles/brats_vjepa/configs"
TRAIN, INTERPRET, VIT = f"{C}/train.json", f"{C}/interpret.json", f"{C}/vit.json"
TINY = [
    "--demo_num_cases", "3", "--demo_size", "[32,32,32]", "--roi_size", "[16,16,16]", "--channels", "[4,8]",
    "--strides", "[2]", "--predictor_depth", "1", "--predictor_dim", "24", "--max_epochs", "1", "--batch_size", "2",
    "--mask_block_scale", "[0.2,0.3]", "--num_mask_blocks", "1", "--volume_size", "[24,24,24]",
]  # fmt: skip
_ARTIFACT = re.compile(r"(events\.out\.tfevents.*|.*\.pt|datalist\.json|.*\.nii\.gz|.*_overlay\.png|.*_error\.png)")


def _run(*args: str, timeout: int = 480) -> str:
    proc = subprocess.run([sys.executable, "-m", "monai.bundle", "run", *args], cwd=REPO, env=bundle_env(),
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout + proc.stderr


def test_predictor_error_maps_on_the_input_grid(tmp_path):
    out = tmp_path / "out"
    before = find_artifacts(_ARTIFACT, {".git", "__pycache__", ".pytest_cache"})
    _run("training", "--config_file", TRAIN, "--output_dir", str(out), *TINY)
    configs = f"['{TRAIN}','{INTERPRET}']"
    _run("interpreting", "--config_file", configs, "--output_dir", str(out), *TINY, "--interpret_region_size", "1")
    assert find_artifacts(_ARTIFACT, {".git", "__pycache__", ".pytest_cache"}) == before
    datalist = json.loads((out / "datalist.json").read_text())
    test_items = datalist["test"]
    assert test_items
    for item in test_items:
        name = item.get("id") or item["case_id"]  # the datalist's case id names the outputs
        nifti = out / "interpret" / f"{name}_predictor_error.nii.gz"
        assert (out / "interpret" / f"{name}_predictor_error.png").read_bytes()[:4] == b"\x89PNG"
        source = nib.load(Path(datalist["root"]) / item["image"][0])
        error = nib.load(nifti)
        # the map lies on the scan's own grid: same shape and voxel-to-world matrix, so viewers overlay it directly
        assert error.shape == source.shape and np.allclose(error.affine, source.affine, atol=1e-4)
        values = np.asarray(error.dataobj)
        assert np.isfinite(values).all() and values.max() > 0 and values.dtype == np.float32


def test_attention_map_choice_with_the_vit_overlay(tmp_path):
    from monai.bundle import ConfigWorkflow

    from monai_jepa.interpret import PredictorErrorMap, ViTAttentionMap

    tiny = {"demo_num_cases": 3, "demo_size": [32, 32, 32], "roi_size": [16, 16, 16], "num_layers": 1,
            "hidden_size": 24, "predictor_dim": 24, "predictor_depth": 1, "interpret_region_size": 1,
            "output_dir": str(tmp_path)}  # fmt: skip
    for method, kind in (("attention", ViTAttentionMap), ("predictor_error", PredictorErrorMap)):
        wf = ConfigWorkflow(config_file=[TRAIN, INTERPRET, VIT], workflow_type=None, logging_file=False,
                            interpret_method=method, **tiny)  # fmt: skip
        net = wf.parser.get_parsed_content("interpret#network")
        assert isinstance(net, kind)
        assert (net.encoder if method == "attention" else net.model.encoder).grid_size == (2, 2, 2)
