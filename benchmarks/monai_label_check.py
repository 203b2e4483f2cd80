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
"""MONAI Label's ``BundleInferTask`` on ``brats_vjepa``: the bundle loaded as MONAI Label loads it and one inference
run on a 4-channel volume.

Run in a virtual environment of its own (MONAI Label 0.8.5 pins ``numpy < 2``), with this checkout importable::

    python -m venv /tmp/mlvenv && . /tmp/mlvenv/bin/activate
    echo "torch==2.13.0" > /tmp/c.txt && pip install -c /tmp/c.txt torch==2.13.0 monailabel==0.8.5
    PYTHONPATH=. python -m benchmarks.monai_label_check

Steps: the bundle's own ``run training`` and ``run segmenting`` on its generated demo data (two epochs each: weights
for the plumbing, not a model), a copy of the bundle with the fine-tuned UNet as ``models/model.pt`` (where MONAI
Label looks), ``BundleInferTask`` on that copy, and one request on a demo case stacked as a 4D NIfTI. Writes
``benchmarks/results/monai_label/README.md`` (what loaded, the label values written against ``channel_def``, the
commands, commit, machine and date).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import fire
import numpy as np

from benchmarks._common import provenance
from monai_jepa.utils.fileio import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks/results/monai_label"
CONFIGS = "bundles/brats_vjepa/configs"


def _run(cmd: list[str], log: Path) -> None:
    with open(log, "a") as f:
        subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=True)


def _torchvision_or_stub() -> str:
    """MONAI Label imports ``torchvision.utils`` (image grids, unused for segmentation inference). The PyPI
    torchvision wheels need the CUDA build of torch; with a CPU-only torch a stub module stands in."""
    try:
        import torchvision  # noqa: F401

        return "torchvision"
    except (ImportError, RuntimeError):
        import types

        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        stub, utils = types.ModuleType("torchvision"), types.ModuleType("torchvision.utils")
        utils.make_grid = utils.save_image = None
        stub.utils = utils
        sys.modules.update({"torchvision": stub, "torchvision.utils": utils})
        return "a torchvision stub (the PyPI wheel does not load against the CPU-only torch)"


def main(work: str = "/tmp/monai_label_check") -> None:
    import nibabel as nib

    vision = _torchvision_or_stub()
    import monailabel
    from monailabel.tasks.infer.bundle import BundleInferTask

    work_dir = Path(work)
    shutil.rmtree(work_dir, ignore_errors=True)
    out, app = work_dir / "run", work_dir / "apps" / "brats_vjepa"
    out.mkdir(parents=True)
    log = work_dir / "bundle_runs.log"
    train = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", f"{CONFIGS}/train.json",
             "--output_dir", str(out), "--max_epochs", "2"]  # fmt: skip
    segment = [sys.executable, "-m", "monai.bundle", "run", "segmenting", "--config_file",
               f"['{CONFIGS}/train.json','{CONFIGS}/segment.json']", "--output_dir", str(out),
               "--seg_max_epochs", "2"]  # fmt: skip
    _run(train, log)
    _run(segment, log)
    shutil.copytree(ROOT / "bundles" / "brats_vjepa", app, ignore=shutil.ignore_patterns("outputs"))
    (app / "models").mkdir(exist_ok=True)
    shutil.copy(out / "models" / "seg_model.pt", app / "models" / "model.pt")

    case = sorted(p for p in (out / "demo_data").iterdir() if p.is_dir())[0]
    seqs = [next(case.glob(f"*_{s}.nii.gz")) for s in ("t1", "t1ce", "t2", "flair")]
    first = nib.load(str(seqs[0]))
    stacked = np.stack([np.asarray(nib.load(str(p)).dataobj, np.float32) for p in seqs], axis=-1)
    image = work_dir / f"{case.name}_4d.nii.gz"
    nib.save(nib.Nifti1Image(stacked, first.affine), str(image))

    start = time.time()
    task = BundleInferTask(str(app), {})
    loaded = task.is_valid()
    label_file, result = task({"image": str(image), "device": "cpu", "result_extension": ".nii.gz"})
    seconds = time.time() - start
    label = np.asarray(nib.load(label_file).dataobj)
    truth = np.asarray(nib.load(str(next(case.glob("*_seg.nii.gz")))).dataobj)
    meta = json.loads((app / "configs" / "metadata.json").read_text())
    channel_def = meta["network_data_format"]["outputs"]["pred"]["channel_def"]
    values = sorted(int(v) for v in np.unique(label))
    prov = provenance()
    lines = [
        "# MONAI Label: `BundleInferTask` on `brats_vjepa`",
        "",
        f"MONAI Label {monailabel.__version__} (its own virtual environment, with {vision}), bundle version "
        f"{meta['version']}; {prov['machine']['cpu']}, commit {prov['commit'][:10]}, {prov['date']}.",
        "",
        f"- `BundleInferTask(<copy of the bundle with models/model.pt>)` loaded: **{loaded}**; labels "
        f"{task.labels}.",
        f"- One request on a 4-channel demo volume `{image.name}` (shape {list(stacked.shape)}): label written to a "
        f"file of shape {list(label.shape)} (the input grid: {list(label.shape) == list(stacked.shape[:3])}), in "
        f"{seconds:.1f} s including loading.",
        f"- Label values written: {values}; `channel_def` of the metadata: {channel_def}. The bundle writes the "
        "BraTS label values (`label_values`, 0 / 1 / 2 / 4: enhancing tumour as 4), while `channel_def` indexes the "
        "network's output channels (ET = 3): a MONAI Label client that reads `channel_def` as label values sees ET "
        "under the wrong number." if 4 in values or 3 not in values else
        f"- Label values written: {values}; `channel_def`: {channel_def}.",
        f"- Demo ground truth values {sorted(int(v) for v in np.unique(truth))} (weights from 2 + 2 epochs on 8 "
        "synthetic cases: the plumbing is checked, not the segmentation).",
        f"- Result params returned: {sorted(result)}.",
        "",
        "Not checked here: `BundleTrainTask` (MONAI Label's training reads `train#dataset#data`, which this bundle's "
        "pretraining config builds from `train#source`; the segmentation fine-tuning lives in `segment.json`).",
        "",
        "Commands:",
        "",
        "```bash",
        "python -m venv /tmp/mlvenv && . /tmp/mlvenv/bin/activate",
        'echo "torch==2.13.0" > /tmp/c.txt && pip install -c /tmp/c.txt torch==2.13.0 monailabel==0.8.5',
        "PYTHONPATH=. python -m benchmarks.monai_label_check",
        "# which runs:",
        " ".join(train),
        " ".join(segment),
        "```",
        "",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / "README.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    fire.Fire(main)
