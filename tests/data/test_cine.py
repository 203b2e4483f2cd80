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
"""Cine (2D+t) readers and datalists: generated DICOM / NIfTI clips, contours, demo data, and the shared Sunnybrook
and ultrasound files (skipped when ``../shared`` is absent)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from monai_jepa.apps.datasets import sunnybrook_datalist
from monai_jepa.data import (
    EmptyDatasetError,
    InvalidImageError,
    LayoutError,
    MissingFileError,
    ShapeMismatchError,
    UnreadableFileError,
    cine_datalist,
    dicom_cine_clips,
    load_cine,
    load_frame_mask,
    make_demo_cine,
    rasterize_contour,
)
from tests.data.test_io import write_dicom

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SUNNYBROOK, SAMPLES = DATA / "sunnybrook_cine", DATA / "dicom_samples"


def _cine_series(folder: Path, slices=2, phases=3, shape=(6, 5), drop=None, patient="P1") -> None:
    """``slices`` positions x ``phases`` single-frame files, value 100 * slice + 10 * phase, named out of time order."""
    n = 0
    for s in range(slices):
        for p in reversed(range(phases)):
            if (s, p) == drop:
                continue
            n += 1
            write_dicom(folder / f"{n:03d}.dcm", np.full(shape, 100 * s + 10 * p), z=8.0 * s, instance=n,
                        patient_id=patient, TriggerTime=40.0 * p, CardiacNumberOfImages=phases)  # fmt: skip


def test_rasterize_contour_fills_the_polygon(tmp_path):
    square = tmp_path / "square.txt"
    square.write_text("2.5 1.5\n6.5 1.5\n6.5 4.5\n2.5 4.5\n")
    mask = rasterize_contour(square, (8, 10))
    assert mask.sum() == 4 * 3 and mask[2:5, 3:7].all()  # pixel centres x 3..6, y 2..4
    assert np.array_equal(load_frame_mask(square, (8, 10)), mask.astype(np.uint8))


@pytest.mark.parametrize(
    "text, message", [("1 1\n2 2\n", ">= 3"), ("1 1\n2 x\n3 3\n", "one 'x y' pair"), ("1 1\n20 1\n3 3\n", "outside")]
)
def test_bad_contours_name_the_file(tmp_path, text, message):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(InvalidImageError, match=message) as e:
        rasterize_contour(path, (8, 8))
    assert str(path) in str(e.value)


def test_mask_image_of_the_wrong_size_is_an_error(tmp_path):
    path = tmp_path / "m.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 4), np.uint8), np.eye(4)), str(path))
    with pytest.raises(ShapeMismatchError, match="expected the frame shape"):
        load_frame_mask(path, (4, 5))


def test_dicom_cine_groups_by_position_and_orders_by_trigger_time(tmp_path):
    _cine_series(tmp_path / "study")
    clips = dicom_cine_clips(tmp_path / "study")
    assert [(c["slice_index"], c["num_frames"]) for c in clips] == [(0, 3), (1, 3)]
    for s, clip in enumerate(clips):
        frames, meta = load_cine(clip["image"])
        assert frames.shape == (1, 3, 6, 5) and meta["num_frames"] == 3
        assert frames[0, :, 0, 0].tolist() == [100 * s + 10 * p for p in range(3)]  # time order, not file order


def test_missing_phase_and_frame_size_errors_name_the_files(tmp_path):
    _cine_series(tmp_path / "gap", drop=(1, 2))
    with pytest.raises(LayoutError, match=r"has 2 phases, expected 3 .*missing phases") as e:
        dicom_cine_clips(tmp_path / "gap")
    assert str(tmp_path / "gap") in str(e.value)
    a = write_dicom(tmp_path / "a.dcm", np.zeros((6, 5)))
    b = write_dicom(tmp_path / "b.dcm", np.zeros((6, 4)))
    with pytest.raises(ShapeMismatchError, match="frame 1") as e:
        load_cine([a, b])
    assert str(b) in str(e.value)
    with pytest.raises(InvalidImageError, match="0 frames"):
        load_cine([])


def test_nifti_clips(tmp_path):
    data = np.random.default_rng(0).random((6, 5, 4)).astype(np.float32)  # (H, W, T)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "c.nii.gz"))
    clip, _ = load_cine(str(tmp_path / "c.nii.gz"))
    assert clip.shape == (1, 4, 6, 5) and np.allclose(clip[0, 2], data[..., 2])
    nib.save(nib.Nifti1Image(np.stack([data, 2 * data], 2), np.eye(4)), str(tmp_path / "v.nii.gz"))  # (H, W, Z, T)
    assert np.allclose(load_cine(str(tmp_path / "v.nii.gz"), slice_index=1)[0][0, 3], 2 * data[..., 3])
    with pytest.raises(InvalidImageError, match="slice_index"):
        load_cine(str(tmp_path / "v.nii.gz"))
    nib.save(nib.Nifti1Image(np.zeros((6, 5, 0), np.float32), np.eye(4)), str(tmp_path / "empty.nii.gz"))
    with pytest.raises(InvalidImageError, match="empty.nii.gz"):  # nibabel keeps no axes of a 0-frame image
        load_cine(str(tmp_path / "empty.nii.gz"))


def test_demo_cine_beats_and_its_datalist(tmp_path, caplog):
    assert len(make_demo_cine(tmp_path / "demo", num_cases=3, size=(32, 32), num_frames=10)) == 3
    datalist = cine_datalist(
        tmp_path / "missing", demo_dir=tmp_path / "demo2", demo_num_cases=5, out=tmp_path / "d.json"
    )
    assert "NO REAL DATA" in caplog.text and "SYNTHETIC beating-heart" in caplog.text
    assert datalist["kind"] == "demo" and json.loads((tmp_path / "d.json").read_text())["root"] == datalist["root"]
    items = [i for s in ("training", "validation", "test") for i in datalist[s]]
    assert (
        len(items) == 5
        and len({i["patient_id"] for i in datalist["training"]} & {i["patient_id"] for i in datalist["test"]}) == 0
    )
    item = items[0]
    clip, _ = load_cine(os.path.join(datalist["root"], item["image"]))
    assert clip.shape == (1, 16, 64, 64)
    ed, es = (load_frame_mask(os.path.join(datalist["root"], item[f"label_{k}"]), (64, 64)) for k in ("ed", "es"))
    assert ed.sum() > 1.3 * es.sum() > 0  # the cavity contracts from ED to ES
    t_ed, t_es = item["label_frames"]["ed"], item["label_frames"]["es"]
    assert clip[0, t_ed][ed > 0].mean() > 2 * clip[0, t_ed][ed == 0].mean()  # the mask is the bright blood pool
    assert clip[0, t_es][es > 0].mean() > 2 * clip[0, t_es][es == 0].mean()
    with pytest.raises(LayoutError, match="no such folder"):
        cine_datalist(tmp_path / "missing", kind="dicom")


def test_non_cine_dicom_folder_is_empty(tmp_path):
    write_dicom(tmp_path / "ct" / "1.dcm", np.zeros((4, 4)))
    with pytest.raises(EmptyDatasetError, match="no cine clip"):
        cine_datalist(tmp_path / "ct")


@pytest.mark.skipif(not SUNNYBROOK.is_dir(), reason="shared Sunnybrook data not available")
def test_sunnybrook_layout():
    datalist = sunnybrook_datalist(SUNNYBROOK)
    items = [i for s in ("training", "validation", "test") for i in datalist[s]]
    assert len(items) == 57 and {i["num_frames"] for i in items} == {20}
    assert sorted({i["patient_id"] for i in items}) == [f"SCD0000{k}01" for k in range(1, 6)]
    assert [len({i["patient_id"] for i in datalist[s]}) for s in ("training", "validation", "test")] == [3, 1, 1]
    labelled = [i for i in items if "label_frames" in i]
    assert len(labelled) == 48  # 96 endocardium contours, on 2 frames of each labelled slice
    ratios, areas = [], []
    for item in labelled[::6]:
        clip, _ = load_cine([os.path.join(datalist["root"], p) for p in item["image"]])
        for phase in ("ed", "es"):
            mask = load_frame_mask(os.path.join(datalist["root"], item[f"label_{phase}"]), clip.shape[2:])
            frame = clip[0, item["label_frames"][phase]]
            ratios.append(frame[mask > 0].mean() / frame.mean())
            areas.append(mask.sum())
    assert min(ratios) > 1.5  # every rasterised contour lies on the bright blood pool
    assert np.mean(areas[0::2]) > np.mean(areas[1::2])  # the cavity is larger at ED than at ES


@pytest.mark.skipif(not (SAMPLES / "examples_ybr_color.dcm").is_file(), reason="shared DICOM samples not available")
def test_ultrasound_multiframe_folder_and_file():
    datalist = cine_datalist(SAMPLES)
    assert sorted((i["image"], i["num_frames"]) for i in datalist["training"]) == [
        ("color3d_jpeg_baseline.dcm", 120),
        ("examples_ybr_color.dcm", 30),
    ]  # enhanced CT / MR multi-frame volumes are not clips
    single = cine_datalist(SAMPLES / "examples_ybr_color.dcm")
    assert single["training"][0]["image"] == "examples_ybr_color.dcm" and single["kind"] == "dicom"
    clip, _ = load_cine(SAMPLES / "examples_ybr_color.dcm", color="rgb")
    assert clip.shape[:2] == (3, 30)


def _write_video(path: Path, frames: np.ndarray, codec: str = "mjpeg") -> None:
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_video_clips_decode_and_make_a_datalist(tmp_path):
    frames = np.zeros((12, 32, 48, 3), np.uint8)
    for t in range(12):
        frames[t, 8:24, 4 + 2 * t : 14 + 2 * t] = 220  # a bright block moving right
    (tmp_path / "echo").mkdir()
    for name in ("a", "b", "c"):
        _write_video(tmp_path / "echo" / f"{name}.avi", frames)
    clip, meta = load_cine(str(tmp_path / "echo/a.avi"))
    assert clip.shape == (1, 12, 32, 48) and clip.dtype == np.float32 and meta["num_frames"] == 12
    assert meta["frame_time_ms"] == pytest.approx(40.0)
    centre = [float((clip[0, t].sum(0) * np.arange(48)).sum() / clip[0, t].sum()) for t in range(12)]
    assert np.allclose(np.diff(centre), 2.0, atol=0.3)  # the block moves 2 pixels per frame, in frame order
    assert load_cine(str(tmp_path / "echo/a.avi"), color="rgb")[0].shape == (3, 12, 32, 48)
    datalist = cine_datalist(tmp_path / "echo", fractions=(0.34, 0.33, 0.33))
    assert datalist["kind"] == "video"
    items = [i for s in ("training", "validation", "test") for i in datalist[s]]
    assert sorted(i["patient_id"] for i in items) == ["a", "b", "c"]
    assert cine_datalist(tmp_path / "echo/b.avi")["training"][0]["patient_id"] == "b"


def test_corrupt_and_empty_videos_name_the_file(tmp_path):
    av = pytest.importorskip("av")
    bad = tmp_path / "corrupt.avi"
    bad.write_bytes(b"RIFF" + bytes(200))
    with pytest.raises(UnreadableFileError, match="not a decodable video") as e:
        load_cine(str(bad))
    assert str(bad) in str(e.value)
    empty = tmp_path / "empty.mp4"
    container = av.open(str(empty), "w")
    stream = container.add_stream("mpeg4", rate=25)
    stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
    container.start_encoding()
    container.close()
    with pytest.raises(InvalidImageError, match="expected a video with at least one frame|0 frames") as e:
        load_cine(str(empty))
    assert str(empty) in str(e.value)
    with pytest.raises(MissingFileError, match="no such video"):
        load_cine(str(tmp_path / "missing.mp4"))


def _acdc_patient(root: Path, pid: str, ed=1, es=3, frames=4, gt=True, info=None) -> None:
    folder = root / pid
    folder.mkdir(parents=True)
    cine = np.zeros((6, 5, 2, frames), np.float32)
    cine[..., :] = np.arange(frames, dtype=np.float32)  # frame t holds the value t
    nib.save(nib.Nifti1Image(cine, np.eye(4)), str(folder / f"{pid}_4d.nii.gz"))
    (folder / "Info.cfg").write_text(
        info if info is not None else f"ED: {ed}\nES: {es}\nGroup: NOR\nNbFrame: {frames}\n"
    )
    for t in (ed, es) if gt else ():
        labels = np.zeros((6, 5, 2), np.uint8)
        labels[1:3, 1:4, 0], labels[4, 0, 0], labels[0, 0, 1] = 3, 2, 3  # LV cavity, myocardium
        nib.save(nib.Nifti1Image(labels, np.eye(4)), str(folder / f"{pid}_frame{t:02d}_gt.nii.gz"))


def test_acdc_4d_layout_per_slice_clips_with_lv_labels(tmp_path):
    for k in range(3):
        _acdc_patient(tmp_path / "training", f"patient00{k + 1}", gt=k != 2)
    datalist = cine_datalist(tmp_path, fractions=(0.34, 0.33, 0.33))
    assert datalist["kind"] == "acdc"
    items = sorted((i for s in ("training", "validation", "test") for i in datalist[s]), key=lambda i: i["patient_id"])
    assert [(i["patient_id"], i["slice_index"]) for i in items] == [
        (f"patient00{k}", z) for k in (1, 2, 3) for z in (0, 1)
    ]
    assert items[0]["label_frames"] == {"ed": 0, "es": 2} and "label_frames" not in items[-1]
    root = Path(datalist["root"])
    item = {**items[0], "image": str(root / items[0]["image"])}
    item.update({k: str(root / item[k]) for k in ("label_ed", "label_es")})
    from monai_jepa.transforms import LoadCined, LoadFrameLabelsd

    out = LoadFrameLabelsd()(LoadCined("image")(item))
    assert out["image"].shape == (1, 4, 6, 5) and out["image"][0, :, 0, 0].tolist() == [0, 1, 2, 3]
    assert out["label"][1, :, 0, 0].tolist() == [1, 0, 1, 0]  # ED = frame 1, ES = frame 3 (1-based in Info.cfg)
    assert out["label"][0, 0].sum() == 6 and out["label"][0, 0, 4, 0] == 0  # LV cavity (class 3) only, slice 0


@pytest.mark.parametrize(
    "kwargs, message", [({"info": "Group: NOR\n"}, "'ED: n'"), ({"ed": 1, "es": 9, "gt": False}, "must be frames")]
)
def test_acdc_bad_info_names_the_file(tmp_path, kwargs, message):
    _acdc_patient(tmp_path, "patient001", **kwargs)
    with pytest.raises(LayoutError, match=message) as e:
        cine_datalist(tmp_path, kind="acdc")
    assert "Info.cfg" in str(e.value)


def test_cine_datalist_validates_clips_with_the_loader(tmp_path):
    """validate=True loads every clip with LoadCined before the datalist is written: a truncated clip raises naming
    it (no datalist file); skip_bad drops and reports it; the cache spares a rerun the decoding."""
    make_demo_cine(tmp_path / "clips", 4, (24, 24), 6, 0)
    bad = tmp_path / "clips" / "case_002.nii.gz"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    out, cache = tmp_path / "datalist.json", tmp_path / "cache.json"
    with pytest.raises(UnreadableFileError, match=r"case_002.nii.gz: cannot be loaded \(EOFError"):
        cine_datalist(tmp_path / "clips", kind="nifti", out=out, validate=True, validation_cache=cache)
    assert not out.exists() and not cache.exists()
    report = tmp_path / "invalid.json"
    datalist = cine_datalist(tmp_path / "clips", kind="nifti", out=out, validate=True, skip_bad=True,
                             validation_cache=cache, validation_report=report)  # fmt: skip
    kept = [i["image"] for s in ("training", "validation", "test") for i in datalist[s]]
    assert len(kept) == 3 and not any("case_002" in k for k in kept) and datalist["invalid"][0]["path"] == str(bad)
    assert json.loads(report.read_text())["ok"] == 3 and len(json.loads(cache.read_text())["passed"]) == 3
    assert json.loads(out.read_text())["invalid"][0]["error"] == "UnreadableFileError"


def test_clip_values_from_tables_and_from_masks(tmp_path):
    """Per-clip values: the demo's targets.csv holds each clip's area ejection fraction, equal to the one measured on
    its ED / ES masks; EchoNet-Dynamic's FileList.csv gives EF and the official split; bad tables name the file."""
    from monai_jepa.data.cine import clip_targets
    from monai_jepa.evaluation import clip_area_ef, clip_values

    datalist = cine_datalist(None, demo_dir=tmp_path / "demo", demo_num_cases=4, demo_size=(32, 32))
    root = datalist["root"]
    items = [{**i, "image": os.path.join(root, i["image"])} for s in ("training", "validation", "test")
             for i in datalist[s]]  # fmt: skip
    assert datalist["target_name"] == "target" and all(20.0 < i["target"] < 80.0 for i in items)
    assert len({round(i["target"], 1) for i in items}) == 4  # the contraction differs between clips
    for item in items:
        assert clip_area_ef(item, root) == pytest.approx(item["target"], abs=0.01)
    kept, values = clip_values(items, root)  # "auto": the table
    assert values == [i["target"] for i in items]
    no_table = [{k: v for k, v in i.items() if k != "target"} for i in items]
    kept, values = clip_values(no_table + [{"image": items[0]["image"]}], root)  # "auto": the masks
    assert len(kept) == 4 and values == pytest.approx([i["target"] for i in items], abs=0.01)

    echo = tmp_path / "echonet"
    (echo / "Videos").mkdir(parents=True)
    (echo / "FileList.csv").write_text("FileName,EF,ESV,EDV,Split\n0X1A,61.5,20,52,TRAIN\n0X2B,35.0,60,92,TEST\n")
    targets, name = clip_targets(echo / "Videos")
    assert name == "EF" and targets == {"0X1A": {"target": 61.5, "split": "train"},
                                        "0X2B": {"target": 35.0, "split": "test"}}  # fmt: skip
    (echo / "FileList.csv").write_text("FileName,EF\n0X1A,n/a\n")
    with pytest.raises(LayoutError, match=r"FileList.csv' line 2: column 'EF'"):
        clip_targets(echo)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "targets.csv").write_text("file,value\na,1\n")
    with pytest.raises(LayoutError, match="targets.csv' must have the columns 'image' and 'target'"):
        clip_targets(tmp_path / "plain")
    assert clip_targets(tmp_path / "demo_none") == ({}, None)
