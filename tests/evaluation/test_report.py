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

import datetime
import json

import numpy as np
import torch

from monai_jepa.evaluation import format_report, json_safe, plot_label_efficiency, run_provenance, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def record(method, protocol, probe, n, auc, std=None, fraction=None, shots=None):
    return {
        "dataset": "demo",
        "method": method,
        "protocol": protocol,
        "probe": probe,
        "label_fraction": fraction,
        "shots": shots,
        "n_labels": n,
        "acc": 0.5,
        "auc": auc,
        "auc_std": std,
        "seconds": 1.0,
        "pretrain_seconds": 100.0 if method == "lejepa" else 0.0,
        "commit": "abc",
        "command": "cmd",
        "machine": "m",
        "date": "d",
    }


RECORDS = [
    record("lejepa", "linear", "linear", 10, 0.81, 0.02, fraction=0.1),
    record("lejepa", "linear", "linear", 100, 0.9, fraction=1.0),
    record("random_init", "linear", "linear", 10, 0.6, 0.05, fraction=0.1),
    record("random_init", "linear", "linear", 100, 0.65, fraction=1.0),
    record("lejepa", "few_shot", "knn", 2, 0.7, 0.1, shots=1),
    record("lejepa", "fine_tune", None, 100, 0.93, fraction=1.0),
    record("scratch", "fine_tune", None, 100, float("nan"), fraction=1.0),
]


def test_json_safe():
    out = json_safe({"a": np.float32(0.5), "b": [float("nan"), np.int64(3)], "c": torch.tensor([1.0, 2.0]), 4: None})
    assert out == {"a": 0.5, "b": [None, 3], "c": [1.0, 2.0], "4": None}
    json.dumps(out, allow_nan=False)


def test_format_report_tables():
    text = format_report(RECORDS)
    assert text.startswith("# Evaluation: demo")
    lines = text.splitlines()
    linear = lines.index("## Linear probe on frozen features")
    assert lines[linear + 2] == "| labels | lejepa | random_init |"  # columns: methods, pretrained first
    assert lines[linear + 4] == "| 10% (10 labels) | AUC 0.810 ± 0.020, acc 0.500 | AUC 0.600 ± 0.050, acc 0.500 |"
    assert lines[linear + 5] == "| 100% (100 labels) | AUC 0.900, acc 0.500 | AUC 0.650, acc 0.500 |"
    assert "| 1-shot (2 labels) | AUC 0.700 ± 0.100, acc 0.500 |" in lines
    tune = next(i for i, line in enumerate(lines) if line.startswith("## Fine-tuning"))
    assert lines[tune + 2] == "| labels | lejepa | scratch |"
    assert lines[tune + 4] == "| 100% (100 labels) | AUC 0.930, acc 0.500 | AUC n/a, acc 0.500 |"
    assert "| lejepa | 100 | 4.0 |" in lines  # pretraining seconds; evaluation seconds summed over records
    assert "- commit: `abc`" in lines
    assert "No results." in format_report([])


def test_write_report_writes_three_files_atomically(tmp_path):
    paths = write_report(RECORDS, tmp_path, "Demo")
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == [
        "label_efficiency.png",
        "metrics.json",
        "report.md",
    ]
    loaded = json.loads(paths["metrics"].read_text())
    assert len(loaded) == len(RECORDS) and loaded[-1]["auc"] is None  # NaN -> null (strict JSON)
    assert loaded[0] == json_safe(RECORDS[0])
    assert paths["report"].read_text().startswith("# Demo")
    assert paths["plot"].read_bytes()[:8] == PNG_SIGNATURE
    write_report(RECORDS[:2], tmp_path)  # rewritten in place, no temporary files left behind
    assert len(json.loads(paths["metrics"].read_text())) == 2
    assert len(list((tmp_path / "eval").iterdir())) == 3


def test_plot_without_auc_values(tmp_path):
    path = plot_label_efficiency([record("lejepa", "linear", "linear", 0, float("nan"))], tmp_path / "p.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_run_provenance():
    info = run_provenance(command="python -m x", device="cpu")
    assert info["command"] == "python -m x"
    assert "CPUs" in info["machine"] and torch.__version__ in info["machine"]
    assert info["commit"] is None or len(info["commit"].split("-")[0]) == 40
    assert datetime.datetime.fromisoformat(info["date"]).tzinfo is not None  # UTC, ISO 8601
