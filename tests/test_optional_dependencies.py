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
"""Optional dependencies: every subpackage imports without them, and using a feature that needs one raises an
``ImportError`` naming the package and the ``monai_jepa`` extra that installs it.

The packages are hidden in a subprocess by setting ``sys.modules[name] = None`` before anything is imported, which
makes every ``import name`` fail as if the package were not installed."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from monai_jepa.utils.module import OPTIONAL_PACKAGES, missing_package_message, require_package

REPO = Path(__file__).resolve().parents[1]
HIDDEN = sorted(OPTIONAL_PACKAGES)

# run in a subprocess with every optional package hidden: import all subpackages, then call one entry point per
# optional feature and record the error it raises
_SCRIPT = r"""
import contextlib, io, json, sys, tempfile
from pathlib import Path

for name in sys.argv[1].split(","):
    sys.modules[name] = None

import monai_jepa, monai_jepa.losses, monai_jepa.networks, monai_jepa.transforms, monai_jepa.engines
import monai_jepa.apps.deid, monai_jepa.cli, monai_jepa.data, monai_jepa.evaluation, monai_jepa.handlers
import monai_jepa.inferers, monai_jepa.interpret, monai_jepa.privacy, monai_jepa.utils

import numpy as np
import torch

tmp = Path(tempfile.mkdtemp())
for name in ("scan.dcm", "scan.nii.gz", "photo.png"):
    (tmp / name).write_bytes(b"\0" * 256)


def cli_help():
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = monai_jepa.cli.main(["--help"])
    raise ImportError(f"exit {code}: {err.getvalue().strip()}")


cases = {
    "load_checked_dicom": lambda: monai_jepa.data.load_checked(tmp / "scan.dcm"),
    "load_cxr_dicom": lambda: monai_jepa.data.load_cxr_dicom(tmp / "scan.dcm"),
    "anonymize": lambda: monai_jepa.apps.deid.anonymize(tmp / "scan.dcm", tmp / "anon.dcm"),
    "deid_read_dicom": lambda: monai_jepa.apps.deid.read_dicom(tmp / "scan.dcm"),
    "load_checked_nifti": lambda: monai_jepa.data.load_checked(tmp / "scan.nii.gz"),
    "load_checked_png": lambda: monai_jepa.data.load_checked(tmp / "photo.png"),
    "make_demo_brats": lambda: monai_jepa.data.make_demo_brats(tmp / "demo", num_cases=1, size=(16, 16, 16)),
    "foreground_mask": lambda: monai_jepa.transforms.foreground_mask(np.ones((1, 8, 8))),
    "classification_metrics": lambda: monai_jepa.evaluation.classification_metrics([0.2, 0.8], [0, 1], "binary"),
    "plot_label_efficiency": lambda: monai_jepa.evaluation.plot_label_efficiency([], tmp / "plot.png"),
    "fit_probe_head": lambda: monai_jepa.evaluation.fit_probe_head(torch.nn.Identity(), None, "binary"),
    "evaluate_segmentation": lambda: monai_jepa.evaluation.evaluate_segmentation(
        torch.nn.Identity(), [{"image": torch.zeros(1, 4, 4), "label": torch.zeros(1, 4, 4)}], num_classes=2
    ),
    "plot_embedding_map": lambda: monai_jepa.interpret.plot_embedding_map(np.zeros((3, 2)), [0, 1, 0], tmp / "e.png"),
    "umap_projection": lambda: monai_jepa.interpret.embedding_projection(np.eye(4), "umap"),
    "save_overlay_png": lambda: monai_jepa.interpret.save_overlay_png(np.zeros((1, 4, 4)), np.zeros((4, 4)), tmp / "o"),
    "dp_training": lambda: monai_jepa.privacy.DPTraining({"target_epsilon": 1.0}, 10),
    "attach_tensorboard": lambda: monai_jepa.engines.attach_tensorboard(None, tmp / "runs"),
    "progress_bar": lambda: monai_jepa.engines.JEPAProgressBar(tty=True).attach(None),
    "cli": cli_help,
}
out = {"loaded": sorted(n for n in sys.argv[1].split(",") if sys.modules.get(n) is not None)}
for key, call in cases.items():
    try:
        call()
        out[key] = None
    except ImportError as e:
        out[key] = str(e)
    except Exception as e:
        out[key] = f"not an ImportError: {type(e).__name__}: {e}"
print("RESULT " + json.dumps(out))
"""

# entry point -> (package named in the error, extra named in the error)
CASES = {
    "load_checked_dicom": ("pydicom", "dicom"),
    "load_cxr_dicom": ("pydicom", "dicom"),
    "anonymize": ("pydicom", "dicom"),
    "deid_read_dicom": ("pydicom", "dicom"),
    "load_checked_nifti": ("nibabel", "data"),
    "load_checked_png": ("pillow", "data"),
    "make_demo_brats": ("nibabel", "data"),
    "foreground_mask": ("scipy", "data"),
    "classification_metrics": ("scikit-learn", "eval"),
    "plot_label_efficiency": ("matplotlib", "eval"),
    "fit_probe_head": ("scikit-learn", "eval"),
    "evaluate_segmentation": ("scipy", "eval"),
    "plot_embedding_map": ("matplotlib", "eval"),
    "umap_projection": ("umap-learn", "interpret"),
    "save_overlay_png": ("matplotlib", "eval"),
    "dp_training": ("opacus", "privacy"),
    "attach_tensorboard": ("tensorboard", "tensorboard"),
    "progress_bar": ("tqdm", "progress"),
    "cli": ("fire", "cli"),
}


@pytest.fixture(scope="module")
def without_optional(tmp_path_factory):
    """What the script above reports with every optional package hidden."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, ",".join(HIDDEN)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path_factory.mktemp("optional"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def test_subpackages_import_without_optional_packages(without_optional):
    # the script imported every subpackage (it would have failed otherwise) and none of the hidden packages loaded
    assert without_optional["loaded"] == []


@pytest.mark.parametrize("case", sorted(CASES))
def test_error_names_package_and_extra(without_optional, case):
    package, extra = CASES[case]
    message = without_optional[case]
    assert message is not None, f"{case} ran without its optional package"
    assert not message.startswith("not an ImportError"), message
    assert package in message and f"pip install 'monai_jepa[{extra}]'" in message, message
    if case == "cli":  # the command line prints one line and exits with status 2
        assert message.startswith("exit 2: error: ") and "\n" not in message, message


def test_extras_in_setup_cover_optional_packages():
    tree = ast.parse((REPO / "setup.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "EXTRAS")
    extras = ast.literal_eval(node.value)
    for package, extra in OPTIONAL_PACKAGES.values():
        names = [req.split(">")[0].split("=")[0].split("<")[0].lower() for req in extras[extra]]
        assert package.lower() in names, f"setup.py's [{extra}] does not list {package}"
    assert "scipy" in [r.split(">")[0] for r in extras["eval"]]  # HD95 of evaluate_segmentation


def test_require_package(monkeypatch):
    assert require_package("numpy", "monai_jepa.test").__name__ == "numpy"
    monkeypatch.setitem(sys.modules, "nibabel", None)
    with pytest.raises(
        ImportError, match=r"^monai_jepa.test needs nibabel for NIfTI input: pip install 'monai_jepa\[data\]'"
    ):
        require_package("nibabel", "monai_jepa.test", "NIfTI input")
    assert missing_package_message("scipy.ndimage", "x", extra="eval") == (
        "x needs scipy: pip install 'monai_jepa[eval]' (or pip install scipy)"
    )
