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
"""The BraTS bundle's scanner-shift stress curve (configs/domain_shift.json) on the segmentation network of
configs/segment.json, from the repository root on tiny synthetic demo data."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from monai_jepa.evaluation import SHIFT_MAXIMA, SHIFT_TYPES, evaluate_segmentation
from monai_jepa.transforms import HistogramStandardize
from tests.bundles._repo import bundle_env, find_artifacts

REPO = Path(__file__).resolve().parents[2]
TRAIN, SEGMENT = "bundles/brats_vjepa/configs/train.json", "bundles/brats_vjepa/configs/segment.json"
SHIFT = "bundles/brats_vjepa/configs/domain_shift.json"
CONFIGS = f"['{TRAIN}','{SEGMENT}','{SHIFT}']"
TINY = [
    "--demo_num_cases", "4", "--demo_size", "[32,32,32]", "--volume_size", "[32,32,32]", "--roi_size", "[16,16,16]",
    "--channels", "[4,8]", "--strides", "[2]", "--seg_max_epochs", "1", "--seg_num_labelled", "1",
    "--seg_batch_size", "1", "--seg_load_pretrained", "False",
]  # fmt: skip
_ARTIFACT = re.compile(r"(.*\.pt|shift_(metrics\.json|report\.md|curves\.png)|(datalist|metrics)\.json)")
_SKIP_DIRS = {".git", "__pycache__", ".pytest_cache", "benchmarks"}


def _run(*args: str, timeout: int = 240) -> str:
    cmd = [sys.executable, "-m", "monai.bundle", *args]
    proc = subprocess.run(cmd, cwd=REPO, env=bundle_env(), capture_output=True, text=True, timeout=timeout)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    return log


def _workflow(out: Path, **extra):
    from monai.bundle import ConfigWorkflow

    overrides = {k.lstrip("-"): json.loads(v) if v != "False" else False for k, v in zip(TINY[::2], TINY[1::2])}
    overrides.update(output_dir=str(out), **extra)
    files = [str(REPO / f) for f in (TRAIN, SEGMENT, SHIFT)]
    return ConfigWorkflow(config_file=files, workflow_type=None, logging_file=False, **overrides)


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    out = tmp_path_factory.mktemp("brats_shift") / "out"
    before = find_artifacts(_ARTIFACT, _SKIP_DIRS)
    _run("run", "segmenting", "--config_file", f"['{TRAIN}','{SEGMENT}']", "--output_dir", str(out), *TINY)
    log = _run("run", "shift_curve", "--config_file", CONFIGS, "--output_dir", str(out), *TINY)
    return {"out": out, "log": log, "before": before}


def test_stress_curve_outputs(shifted):
    out = shifted["out"]
    payload = json.loads((out / "domain_shift" / "shift_metrics.json").read_text())
    records = payload["records"]
    datalist = json.loads((out / "datalist.json").read_text())
    assert payload["num_cases"] == len(datalist["test"]) == 1 and payload["split"] == "test"
    assert payload["checkpoint"] == str(out / "models" / "seg_model.pt")
    assert payload["provenance"]["command"] and payload["shift_maxima"] == SHIFT_MAXIMA
    # every shift type at strengths 0, 0.5, 1 (the defaults), with the parameter each strength gives
    assert [(r["shift"], r["strength"]) for r in records] == [(k, s) for k in SHIFT_TYPES for s in (0.0, 0.5, 1.0)]
    for r in records:
        assert 0.0 <= r["dice"] <= 1.0 and r["harmonization"] == "none" and "dice_per_case" not in r
        assert len(r["dice_per_class"]) == 3
    assert [r["parameter"] for r in records if r["shift"] == "gamma"] == pytest.approx([1.0, 2.5**0.5, 2.5])
    assert len({r["dice"] for r in records if r["strength"] == 0}) == 1  # strength 0 is one evaluation
    report = (out / "domain_shift" / "shift_report.md").read_text()
    assert all(f"## {k}" in report for k in SHIFT_TYPES) and "| none |" in report
    assert (out / "domain_shift" / "shift_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert not find_artifacts(_ARTIFACT, _SKIP_DIRS) - shifted["before"]  # nothing written outside output_dir


def test_strength_zero_is_the_segment_pipeline(shifted):
    """Raw intensities, then the network's normalisation: at strength 0 the same Dice as the segment pipeline's
    preprocessed test volumes (same sliding-window evaluation)."""
    out = shifted["out"]
    wf = _workflow(out)
    parse = wf.parser.get_parsed_content
    load = parse("segment#val_preprocessing")
    items = [load(i) for i in parse("shift#datalist_items")]
    kwargs = dict(parse("shift#evaluate_kwargs"))
    clean = evaluate_segmentation(parse("shift_network"), items, parse("seg_num_classes"), **kwargs)
    records = json.loads((out / "domain_shift" / "shift_metrics.json").read_text())["records"]
    assert records[0]["dice"] == pytest.approx(clean["dice"], abs=1e-6)


def test_harmonization_file(shifted, tmp_path):
    """A fitted HistogramStandardize JSON is applied between the shift and the normalisation."""
    out = shifted["out"]
    wf = _workflow(out)
    parse = wf.parser.get_parsed_content
    load = parse("shift#load")
    train = [load(i)["image"] for i in wf.parser.get_parsed_content("segment#train_items")]
    path = HistogramStandardize().fit(train).save(tmp_path / "landmarks.json")
    wf = _workflow(out, shift_harmonization_file=str(path), shift_types=["gamma"], shift_strengths=[0.0, 1.0])
    parse = wf.parser.get_parsed_content
    records = parse("shift#records")
    assert [r["harmonization"] for r in records] == [str(path)] * 2
    assert isinstance(parse("shift#harmonization"), HistogramStandardize)
    # the gamma shift is monotone: standardisation maps the shifted image back to nearly the same input
    net, items = parse("shift_network"), parse("shift#items")
    harmonize, norm = parse("shift#harmonization"), parse("shift#preprocessing")
    from monai_jepa.evaluation import apply_shift

    x = items[0]["image"]
    a = norm(harmonize(x))
    b = norm(harmonize(apply_shift(x, "gamma", 1.0)))
    fg = torch.as_tensor(x) != 0
    assert float((torch.as_tensor(a) - torch.as_tensor(b))[fg].abs().mean()) < 0.15
    assert net is not None


def test_config_is_formatted():
    text = (REPO / SHIFT).read_text()
    assert text == json.dumps(json.loads(text), indent=4) + "\n"
