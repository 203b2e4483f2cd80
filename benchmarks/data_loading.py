# Copyright (c) monai_jepa contributors
# Licensed under the Apache License, Version 2.0; see LICENSE.
"""Loading speed of 3D volumes with a realistic preprocessing, without and with MONAI's caching datasets.

Preprocessing (``monai_jepa.transforms.presets.mri_preset``): load, channel first, orientation RAS, resampling,
z-score on non-zero voxels (labels resampled nearest). Data:

* ``hippocampus``: MSD Task04 Hippocampus, image + label NIfTI pairs (~35 x 50 x 35, 1 mm), resampled to 1 mm;
* ``tcia``: TCIA Brain-Tumor-Progression, 8 DICOM series (260 x 320 x ~25, 0.69 x 0.69 x 6.5 mm), resampled to
  1 x 1 x 2 mm, read with ITK (MONAI's default for DICOM folders) and with pydicom.

For each, ``Dataset`` (no cache), ``CacheDataset`` (in memory; its first epoch includes building the cache) and
``PersistentDataset`` (on disk in a temporary folder; first epoch writes it), two epochs each, items read in order by
index in the main process with one torch thread (as in a DataLoader worker, which PyTorch limits to one thread; on a
busy 2-core machine the default two threads made these small-tensor transforms ~10x slower), reported as volumes/s,
fastest of ``--rounds`` rounds. Random augmentation is left out: in this project views are made per batch on the
training device, after this deterministic part.

    python -m benchmarks.data_loading [--data ../shared/data] [--limit N] [--rounds 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path

import torch
from monai.data import CacheDataset, Dataset, ITKReader, PersistentDataset, PydicomReader

from benchmarks._common import write_results
from monai_jepa.transforms.presets import mri_preset

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def hippocampus_items(data: Path, limit: int | None) -> list[dict]:
    folder = data / "msd_task04_hippocampus"
    images = sorted((folder / "imagesTr").glob("hippocampus_*.nii.gz"))
    items = [{"image": str(p), "label": str(folder / "labelsTr" / p.name)} for p in images]
    return items[:limit] if limit else items


def tcia_items(data: Path) -> list[dict]:
    folder = data / "tcia_brain_tumor_progression"
    return [{"image": str(p)} for p in sorted(folder.glob("*/*")) if p.is_dir()]


def run_epochs(kind: str, items: list[dict], transform, epochs: int = 2) -> dict:
    """Seconds per epoch (the first including cache construction) and volumes/s for one dataset kind."""
    with tempfile.TemporaryDirectory(prefix="monai_jepa_bench_") as cache_dir:
        t0 = time.perf_counter()
        if kind == "Dataset":
            ds = Dataset(items, transform)
        elif kind == "CacheDataset":
            ds = CacheDataset(items, transform, cache_rate=1.0, num_workers=0, progress=False)
        else:
            ds = PersistentDataset(items, transform, cache_dir=cache_dir)
        build = time.perf_counter() - t0
        times = []
        for epoch in range(epochs):
            t0 = time.perf_counter()
            for i in range(len(ds)):
                out = ds[i]
                assert torch.isfinite(out["image"]).all()
            times.append(time.perf_counter() - t0 + (build if epoch == 0 else 0.0))
        shape = list(out["image"].shape)
    return {
        "kind": kind,
        "num_volumes": len(items),
        "epoch_s": times,
        "volumes_per_s": [len(items) / t for t in times],
        "cache_build_s": build,
        "output_shape_last": shape,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N hippocampus volumes")
    parser.add_argument("--name", default="data_loading", help="results file name (without extension)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (DataLoader workers use 1)")
    parser.add_argument("--rounds", type=int, default=2, help="repeat each measurement; the fastest round is reported")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    logging.getLogger("monai").setLevel(logging.ERROR)

    workloads = []
    hippo = hippocampus_items(args.data, args.limit)
    if hippo:
        workloads.append(
            ("hippocampus", "NibabelReader", hippo, mri_preset(spacing=(1.0, 1.0, 1.0), label_keys="label"))
        )
    tcia = tcia_items(args.data)
    if tcia:
        for reader in (ITKReader, PydicomReader):
            workloads.append(("tcia", reader.__name__, tcia, mri_preset(spacing=(1.0, 1.0, 2.0), reader=reader())))
    if not workloads:
        raise SystemExit(f"no data found under {args.data} (pass --data path/to/shared/data).")

    rows = []
    for dataset, reader, items, transform in workloads:
        transform(dict(items[0]))  # warm-up: lazy imports of the reader (ITK) and first-call costs
        for kind in ("Dataset", "CacheDataset", "PersistentDataset"):
            rounds = [run_epochs(kind, items, transform) for _ in range(args.rounds)]
            best = [min(r["epoch_s"][e] for r in rounds) for e in range(2)]  # least disturbed by other load
            result = {
                "dataset": dataset,
                "reader": reader,
                "kind": kind,
                "num_volumes": len(items),
                "epoch_s": best,
                "volumes_per_s": [len(items) / t for t in best],
                "cache_build_s": min(r["cache_build_s"] for r in rounds),
                "output_shape_last": rounds[0]["output_shape_last"],
                "all_epoch_s": [r["epoch_s"] for r in rounds],
            }
            rows.append(result)
            print(
                f"{dataset:12s} {reader:14s} {kind:18s} epoch 1: {result['volumes_per_s'][0]:8.1f} vol/s, "
                f"epoch 2: {result['volumes_per_s'][1]:8.1f} vol/s"
            )
    payload = {
        "preprocessing": "mri_preset: LoadImaged, EnsureChannelFirstd, Orientationd(RAS), Spacingd, "
        "NormalizeIntensityd(nonzero, channel_wise)",
        "spacing_mm": {"hippocampus": [1.0, 1.0, 1.0], "tcia": [1.0, 1.0, 2.0]},
        "torch_threads": args.threads,
        "rounds": args.rounds,
        "load_average_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "results": rows,
    }
    lines = [
        "# Data loading speed (CPU)",
        "",
        "Volumes per second through the preprocessing of `mri_preset` (load, orientation RAS, resampling, z-score on",
        f"non-zero voxels), items read in order in the main process with {args.threads} torch thread(s); fastest of",
        f"{args.rounds} rounds (this machine is shared). Epoch 1 of `CacheDataset` includes building the cache;",
        "epoch 1 of `PersistentDataset` writes its on-disk cache (temporary folder). Hippocampus: image + label,",
        "resampled to 1 mm; TCIA: one DICOM series per item, resampled to 1 x 1 x 2 mm.",
        "",
        "| data | reader | dataset | volumes | epoch 1 (vol/s) | epoch 2 (vol/s) | epoch 1 (s) | epoch 2 (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['reader']} | {r['kind']} | {r['num_volumes']} | {r['volumes_per_s'][0]:.1f} | "
            f"{r['volumes_per_s'][1]:.1f} | {r['epoch_s'][0]:.2f} | {r['epoch_s'][1]:.2f} |"
        )
    load = payload["load_average_1_5_15"]
    if load is not None:
        lines += ["", f"Load average during the run (1, 5, 15 min): {', '.join(f'{v:.2f}' for v in load)}."]
    paths = write_results(args.name, payload, "\n".join(lines))
    print("written:", *paths)


if __name__ == "__main__":
    main()
