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
"""The ``cxr_lejepa`` DP evaluation overlay (``evaluate_dp.json``) on tiny synthetic demo images."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("opacus")
from monai.bundle import ConfigParser  # noqa: E402

from tests.bundles._repo import bundle_env  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CONFIGS = ["bundles/cxr_lejepa/configs/train.json", "bundles/cxr_lejepa/configs/evaluate.json"]
DP = "bundles/cxr_lejepa/configs/evaluate_dp.json"
TINY = {"image_size": 32, "max_items": 32, "demo_num_images": 48, "validate_data": False, "amp": False}


def test_overlay_is_formatted_and_keeps_evaluate_json():
    text = (REPO / DP).read_text()
    assert text == json.dumps(json.loads(text), indent=4) + "\n"
    plain = ConfigParser()
    plain.read_config([REPO / c for c in CONFIGS])
    assert "dp" not in plain["evaluate"]["suite"]  # evaluate.json alone stays non-private


def test_dp_evaluation_writes_epsilon_and_delta(tmp_path):
    parser = ConfigParser()
    parser.read_config([REPO / c for c in CONFIGS])
    parser.update({"dataset_dir": "", "output_dir": str(tmp_path), **TINY})
    (tmp_path / "models").mkdir()
    torch.save(parser.get_parsed_content("network_def").state_dict(), tmp_path / "models" / "model.pt")
    overrides = [f"--{k} {v}" for k, v in TINY.items()]
    cmd = (
        f"{sys.executable} -m monai.bundle run evaluating --config_file \"{[*CONFIGS, DP]}\" --dataset_dir '' "
        f"--output_dir {tmp_path} {' '.join(overrides)} --eval_seeds [0] --eval_dp_linear#epochs 2"
    )
    proc = subprocess.run(cmd, shell=True, cwd=REPO, env=bundle_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    records = json.loads((tmp_path / "dp" / "eval" / "metrics.json").read_text())
    assert [(r["method"], r["protocol"]) for r in records] == [("lejepa", "dp_linear"), ("random_init", "dp_linear")]
    for r in records:
        assert 2.9 <= r["epsilon"] <= 3.0 and r["delta"] == pytest.approx(1 / (10 * r["n_labels"]))
    report = (tmp_path / "dp" / "eval" / "report.md").read_text()
    assert "## Differential privacy" in report
    assert not (tmp_path / "eval").exists() and not (tmp_path / "models" / "probe_head.pt").exists()
