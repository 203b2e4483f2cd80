# Copyright (c) monai_jepa contributors
# Licensed under the Apache License, Version 2.0; see LICENSE.
"""Bad-input audit: run each command (``inspect``, ``check``, ``anonymize`` and every bundle's training) on crafted
bad inputs and count those rejected cleanly, that is: the documented exit status, a short error (no traceback) that
names the bad file, and nothing written where a failed run must write nothing.

    python -m benchmarks.bad_inputs            # writes benchmarks/results/bad_inputs.md and .json

The inputs are generated in a temporary folder (synthetic NIfTI / PNG / DICOM files, and copies of real DICOM files
from ``../shared/data`` when present). Documented warnings (a DICOM series with a missing slice) count as clean when
the run names the series in a warning.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks._common import RESULTS, provenance
from monai_jepa.utils.fileio import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared" / "data"
BRATS = "bundles/brats_vjepa/configs/train.json"
CXR = "bundles/cxr_lejepa/configs/train.json"
CINE = "bundles/cine_vjepa/configs/train.json"
TINY_3D = ["--demo_size", "[32,32,32]", "--volume_size", "[32,32,32]", "--roi_size", "[16,16,16]", "--channels",
           "[4,8]", "--strides", "[2]", "--predictor_depth", "1", "--predictor_dim", "24", "--max_epochs", "1",
           "--mask_block_scale", "[0.2,0.3]", "--num_mask_blocks", "1"]  # fmt: skip
TINY_2D = ["--image_size", "32", "--batch_size", "8", "--max_epochs", "1"]


def _nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


def _vol(seed: int = 0, shape=(32, 32, 32)) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) * 100).astype(np.float32)


def _truncate(path: Path, keep: int | None = None) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: keep if keep is not None else len(data) // 2])
    return path


def _brats_case(root: Path, name: str, seed: int, **overrides) -> dict[str, Path]:
    """A BraTS 2021-style case folder (4 sequences + seg); ``overrides`` replace a sequence's array or affine."""
    files = {}
    for s in ("t1", "t1ce", "t2", "flair", "seg"):
        data = overrides.get(s, _vol(seed) if s != "seg" else (_vol(seed) > 90).astype(np.float32))
        affine = overrides.get(f"{s}_affine")
        files[s] = _nifti(root / name / f"{name}_{s}.nii.gz", data, affine)
    return files


def _brats_dataset(root: Path, bad: str | None) -> Path:
    for i in range(4):
        _brats_case(root, f"BraTS2021_{i:05d}", i)
    name = "BraTS2021_00004"
    if bad == "truncated":
        _truncate(_brats_case(root, name, 4)["flair"])
    elif bad == "four_d":
        _brats_case(root, name, 4, t2=np.stack([_vol(4)] * 3, -1))
    elif bad == "nan":
        vol = _vol(4)
        vol[3, 3, 3] = np.nan
        _brats_case(root, name, 4, t1=vol)
    elif bad == "affine":
        _brats_case(root, name, 4, flair_affine=np.diag([1.0, 1.0, 2.0, 1.0]))
    elif bad == "shape":
        _brats_case(root, name, 4, t1ce=_vol(4, (32, 32, 30)))
    return root


def _dicom_series(folder: Path, num: int = 6, missing: int | None = None) -> Path:
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    series, study, frame = generate_uid(), generate_uid(), generate_uid()
    for k in range(num):
        if k == missing:
            continue
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"{k}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.PatientID, ds.PatientName, ds.SeriesDescription = "MR", "P1", "Doe^Jane", "T1"
        ds.InstanceNumber, ds.ImagePositionPatient = k + 1, [0.0, 0.0, 2.0 * k]
        ds.ImageOrientationPatient, ds.PixelSpacing, ds.SliceThickness = [1, 0, 0, 0, 1, 0], [1.0, 1.0], 2.0
        ds.Rows = ds.Columns = 32
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = (np.random.default_rng(k).random((32, 32)) * 1000).astype(np.uint16).tobytes()
        pydicom.dcmwrite(str(folder / f"{k}.dcm"), ds, enforce_file_format=True)
    return folder


def _videos(folder: Path, damage: str) -> bool:
    """Four 8-frame MP4 clips (MPEG-4 part 2, PyAV) and a damaged fifth; False when PyAV is not installed."""
    try:
        import av
    except ImportError:
        return False
    folder.mkdir(parents=True)
    for k in range(4):
        container = av.open(str(folder / f"clip_{k}.mp4"), "w")
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(8):
            frame = (np.random.default_rng(10 * k + i).random((32, 32, 3)) * 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        container.close()
    bad = folder / "clip_3.mp4"
    if damage == "cut":
        _truncate(bad, bad.stat().st_size // 3)
    else:
        bad.write_bytes(os.urandom(5000))
    return True


def _png_folder(root: Path, bad: str) -> tuple[Path, Path]:
    from PIL import Image

    root.mkdir(parents=True)
    rows = []
    for i in range(16):
        Image.fromarray((np.random.default_rng(i).random((40, 40)) * 255).astype(np.uint8)).save(root / f"{i}.png")
        rows.append(f"{i}.png,{i % 2},training")
    (root / "labels.csv").write_text("image,label,split\n" + "\n".join(rows) + "\n")
    target = root / "5.png"
    if bad == "truncated":
        _truncate(target, 300)
    elif bad == "empty":
        target.write_bytes(b"")
    else:
        target.write_bytes(os.urandom(2000))
    return root, target


def _run(cmd: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MONAI_JEPA_DEBUG": ""}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def _verdict(proc, names: str, exit_codes: tuple[int, ...], out: Path | None) -> dict:
    """Clean = expected exit status, no traceback, the bad file named in the error (or warning) lines, nothing in
    ``out`` (None: not checked)."""
    err = proc.stderr
    lines = [line for line in (proc.stdout + err).splitlines() if names in line]
    traceback = "Traceback" in err
    named = bool(lines)
    nothing = out is None or not out.exists() or not any(out.rglob("*"))
    ok = proc.returncode in exit_codes and not traceback and named and nothing
    out_lines = (proc.stdout + err).splitlines()
    message = next((line for line in out_lines if line.startswith("error:")), "") or next(
        (line.strip() for line in out_lines if "PROBLEM" in line), lines[0] if lines else ""
    )
    return {"exit": proc.returncode, "traceback": traceback, "names_file": named, "nothing_written": nothing,
            "clean": ok, "message": message[:300]}  # fmt: skip


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="monai_jepa_bad_inputs_"))
    rows = []

    def record(command: str, case: str, verdict: dict) -> None:
        rows.append({"command": command, "case": case, **verdict})
        print(f"{command:10s} {case:45s} {'clean' if verdict['clean'] else 'NOT CLEAN'} {verdict}", flush=True)

    py = [sys.executable, "-m", "monai_jepa"]
    # ---- inspect: exit 1 with the problem naming the file
    for bad in ("truncated", "four_d", "nan", "affine", "shape"):
        root = _brats_dataset(tmp / f"inspect_{bad}", bad)
        proc = _run([*py, "inspect", str(root / "BraTS2021_00004")])
        record("inspect", f"BraTS case folder: {bad}", _verdict(proc, "BraTS2021_00004_", (1,), None))
    npz = tmp / "medmnist.npz"
    np.savez(npz, train_images=np.zeros((2, 8, 8), np.uint8), train_labels=np.zeros((2, 1), np.uint8))
    proc = _run([*py, "inspect", str(npz)])
    record(
        "inspect",
        "MedMNIST npz (a good file: must be read)",
        {
            "exit": proc.returncode,
            "traceback": "Traceback" in proc.stderr,
            "names_file": True,
            "nothing_written": True,
            "clean": proc.returncode == 1 and "train_images" in proc.stdout,
            "message": proc.stdout.splitlines()[-1],
        },
    )  # noqa
    # ---- check: exit 2 at the first bad item, naming it
    for bad in ("truncated", "four_d", "nan", "affine", "shape"):
        root = _brats_dataset(tmp / f"check_{bad}", bad)
        datalist = tmp / f"check_{bad}.json"
        _run([*py, "datalist", "brats", str(root), "--out", str(datalist)])
        proc = _run([*py, "check", str(datalist)])
        record("check", f"BraTS datalist: {bad}", _verdict(proc, "BraTS2021_00004", (2,), None))
    good = _brats_dataset(tmp / "check_good", None)
    _run([*py, "datalist", "brats", str(good), "--out", str(tmp / "good.json")])
    proc = _run([*py, "check", str(tmp / "good.json")])
    record(
        "check",
        "the project's own BraTS datalist (good: accepted)",
        {
            "exit": proc.returncode,
            "traceback": "Traceback" in proc.stderr,
            "names_file": True,
            "nothing_written": True,
            "clean": proc.returncode == 0,
            "message": (proc.stdout + proc.stderr).strip().splitlines()[-1][:200],
        },
    )  # noqa
    # ---- anonymize: exit 2 (the CLI's status for data errors) naming the file, OUT left empty
    sample = SHARED / "dicom_samples" / "CT_small.dcm"
    for case, size in (("truncated after 300 bytes", 300), ("cut inside the meta header (166 bytes)", 166),
                       ("garbage named .dcm", None)):  # fmt: skip
        src, out = tmp / f"anon_{size}" / "in", tmp / f"anon_{size}" / "out"
        series = _dicom_series(src / "series")
        bad = src / "series" / "bad.dcm"
        if size is None:
            bad.write_bytes(b"\0" * 128 + b"DICM" + os.urandom(3000))
        else:
            bad.write_bytes((series / "0.dcm").read_bytes()[:size])
        proc = _run([*py, "anonymize", str(src), str(out)])
        record("anonymize", f"one bad file in a good series: {case}", _verdict(proc, "bad.dcm", (2,), out))
    if sample.is_file():
        src, out = tmp / "anon_real" / "in", tmp / "anon_real" / "out"
        src.mkdir(parents=True)
        shutil.copy(sample, src / "ok.dcm")
        (src / "bad.dcm").write_bytes(sample.read_bytes()[: sample.stat().st_size // 2])
        proc = _run([*py, "anonymize", str(src), str(out)])
        record("anonymize", "a real CT file cut in half beside a good one", _verdict(proc, "bad.dcm", (2,), out))
    # ---- brats_vjepa training: exit 1, one line naming the file, no output folder
    bundle = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file"]
    for bad in ("truncated", "four_d", "nan", "affine", "shape"):
        root, out = _brats_dataset(tmp / f"brats_{bad}", bad), tmp / f"brats_{bad}_out"
        proc = _run([*bundle, BRATS, "--dataset_dir", str(root), "--output_dir", str(out), *TINY_3D])
        record("brats_vjepa", f"BraTS folder: {bad}", _verdict(proc, "BraTS2021_00004", (1,), out))
    folder = tmp / "dicom_missing"
    for k in range(3):
        _dicom_series(folder / f"s{k}", missing=3 if k == 1 else None)
    out = tmp / "dicom_missing_out"
    proc = _run([*bundle, BRATS, "--dataset_dir", str(folder), "--output_dir", str(out), *TINY_3D,
                 "--split_fractions", "[0.34,0.33,0.33]"])  # fmt: skip
    record("brats_vjepa", "DICOM series with a missing middle slice (warning)",
           _verdict(proc, "slice gaps range", (0,), None))  # fmt: skip
    # ---- cxr_lejepa training
    for bad in ("truncated", "empty", "garbage"):
        root, target = _png_folder(tmp / f"cxr_{bad}", bad)
        out = tmp / f"cxr_{bad}_out"
        proc = _run([*bundle, CXR, "--dataset_dir", str(root), "--output_dir", str(out), *TINY_2D])
        record("cxr_lejepa", f"PNG folder: {bad} file", _verdict(proc, str(target), (1,), out))
    # ---- cine_vjepa training
    from monai_jepa.data.cine import make_demo_cine

    make_demo_cine(tmp / "cine", 4, (24, 24), 6, 0)
    _truncate(tmp / "cine" / "case_002.nii.gz")
    out = tmp / "cine_out"
    proc = _run([*bundle, CINE, "--dataset_dir", str(tmp / "cine"), "--output_dir", str(out), "--max_epochs", "1"])
    record("cine_vjepa", "NIfTI clips: one truncated", _verdict(proc, "case_002.nii.gz", (1,), out))
    for case, damage in (("one clip cut", "cut"), ("one garbage file named .mp4", "garbage")):
        folder, out = tmp / f"cine_video_{damage}", tmp / f"cine_video_{damage}_out"
        if not _videos(folder, damage):
            break
        proc = _run([*bundle, CINE, "--dataset_dir", str(folder), "--output_dir", str(out), "--max_epochs", "1"])
        record("cine_vjepa", f"MP4 clips: {case}", _verdict(proc, "clip_3.mp4", (1,), out))
    us = SHARED / "dicom_samples" / "examples_ybr_color.dcm"  # a 30-frame ultrasound cine
    if us.is_file():
        folder, out = tmp / "cine_us", tmp / "cine_us_out"
        folder.mkdir()
        shutil.copy(us, folder / "clip_a.dcm")
        (folder / "clip_b.dcm").write_bytes(us.read_bytes()[: us.stat().st_size * 2 // 3])
        proc = _run([*bundle, CINE, "--dataset_dir", str(folder), "--output_dir", str(out), "--max_epochs", "1"])
        record("cine_vjepa", "ultrasound cine DICOM: one clip cut", _verdict(proc, "clip_b.dcm", (1,), out))

    counts = {}
    for r in rows:
        c = counts.setdefault(r["command"], [0, 0])
        c[0] += int(r["clean"])
        c[1] += 1
    lines = ["# Bad inputs: rejected cleanly or not", "",
             "Produced by `python -m benchmarks.bad_inputs` (command, commit, machine and date in `bad_inputs.json`). "
             "Clean = the documented exit status, no traceback, the bad file named in the error (or, for the missing "
             "slice, in a warning), and nothing written in the output folder of a run that failed.", "",
             "| command | clean / cases |", "|---|---:|"]  # fmt: skip
    lines += [f"| {k} | {v[0]} / {v[1]} |" for k, v in counts.items()]
    lines += ["", "| command | case | clean | exit | message |", "|---|---|---|---:|---|"]
    lines += [f"| {r['command']} | {r['case']} | {'yes' if r['clean'] else '**no**'} | {r['exit']} | "
              f"{r['message'].replace(str(tmp), '<tmp>').replace('|', '/')} |" for r in rows]  # fmt: skip
    atomic_write_text(RESULTS / "bad_inputs.md", "\n".join(lines) + "\n")
    payload = {"rows": [{**r, "message": r["message"].replace(str(tmp), "<tmp>")} for r in rows], "counts": counts,
               "provenance": provenance()}  # fmt: skip
    atomic_write_text(RESULTS / "bad_inputs.json", json.dumps(payload, indent=4) + "\n")
    shutil.rmtree(tmp, ignore_errors=True)
    print("\n".join(lines[: 8 + len(counts)]))


if __name__ == "__main__":
    main()
