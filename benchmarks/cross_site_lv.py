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
"""Cross-site LV cavity segmentation: train on ACDC (Dijon), test on Sunnybrook (Toronto), with 0 / 1 / 2 labelled
Sunnybrook patients, with and without continued self-supervised pretraining on the unlabelled Sunnybrook frames.

Both sites are short-axis cine MRI; the task is the LV cavity (ACDC label 3, the Sunnybrook endocardium contour) on
2D frames. Each frame is padded to a square, resized to 128 x 128 (area for the image, nearest for the label) and
scaled to [0, 1] between its 1st and 99th intensity percentiles; the Dice is computed on that grid.

Networks (one MONAI 2D ``UNet``, the ``segmentation_net_def`` recipe of the bundles in 2D, channels 16-128):

- ``scratch``: random initialisation.
- ``ssl_acdc``: masked latent pretraining (the library's :class:`~monai_jepa.engines.MaskedLatentTrainer`,
  :class:`~monai_jepa.networks.MaskedConvEncoder` around the UNet, :class:`~monai_jepa.networks.JEPAPredictor`,
  :class:`~monai_jepa.losses.MaskedLatentLoss` with SIGReg, multi-block masks; the bundles' defaults) on the
  unlabelled ACDC frames of the site-A training patients.
- ``ssl_acdc+sunnybrook``: ``ssl_acdc`` continued on every unlabelled Sunnybrook frame (57 slice positions x 20
  phases; the test patients' frames included, never their contours): domain adaptation by pretraining.
- ``ssl_acdc_longer``: ``ssl_acdc`` continued on ACDC for the same number of steps, so that the site-B gain is not
  confused with a longer pretraining.

Protocol (:func:`monai_jepa.evaluation.cross_site_sweep`): each network is fine-tuned on the labelled ACDC frames of
24 patients (site A), tested on the 6 other ACDC patients (site A test) and on the Sunnybrook test patients (site B),
then fine-tuned further on the ACDC frames together with the ED / ES frames of the first 1 or 2 labelled Sunnybrook
patients, repeated to make half of the pool (``site_b_share``), and tested again.
Per seed, a seeded permutation of the 5 Sunnybrook patients gives 2 labelled-pool patients and 3 test patients; the
seed also drives the pretraining, the initialisation and the data order.

    python -m benchmarks.cross_site_lv run --seeds "[0,1,2]"
    python -m benchmarks.cross_site_lv report

``run`` writes ``benchmarks/results/cross_site_lv/seed_<s>.json`` (every record of the sweep, the pretraining logs,
command, commit, machine and date); ``report`` writes ``results.md`` and ``dice.png`` beside them.
"""

from __future__ import annotations

import glob
import json
import os
import time
from pathlib import Path

import fire
import numpy as np
import torch
import torch.nn.functional as F

from benchmarks._common import provenance
from monai_jepa.utils.fileio import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED_DATA", ROOT.parent / "shared/data"))
RESULTS = ROOT / "benchmarks/results/cross_site_lv"
SIZE = 128
CHANNELS, STRIDES = (16, 32, 64, 128), (2, 2, 2)
OUT_KEYS = ("loss", "pred", "sigreg", "effective_rank")
METHODS = ("scratch", "ssl_acdc", "ssl_acdc+sunnybrook", "ssl_acdc_longer")


def _frame(image: np.ndarray, label: np.ndarray | None) -> dict:
    """Pad to a square, resize to SIZE x SIZE, percentile-scale: ``{"image": (1, S, S), "label": (1, S, S)}``."""
    h, w = image.shape
    side = max(h, w)
    pad = (((side - h) // 2, side - h - (side - h) // 2), ((side - w) // 2, side - w - (side - w) // 2))
    img = torch.from_numpy(np.pad(image.astype(np.float32), pad))[None, None]
    img = F.interpolate(img, size=(SIZE, SIZE), mode="area")[0]
    lo, hi = torch.quantile(img.flatten(), torch.tensor([0.01, 0.99]))
    img = ((img - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1)
    out = {"image": img}
    if label is not None:
        lbl = torch.from_numpy(np.pad(label.astype(np.float32), pad))[None, None]
        out["label"] = F.interpolate(lbl, size=(SIZE, SIZE), mode="nearest")[0].long()
    return out


def load_acdc() -> dict[str, list[dict]]:
    """ACDC ED / ES volumes as labelled 2D frames, by patient: ``{patient: [{"image", "label", "id"}, ...]}``."""
    import h5py

    files = sorted(glob.glob(str(SHARED / "acdc_edes_h5/volumes/patient*_frame0[12].h5")))
    if not files:
        raise FileNotFoundError(f"no ACDC volume under '{SHARED / 'acdc_edes_h5/volumes'}'.")
    patients: dict[str, list[dict]] = {}
    for f in files:
        name = Path(f).stem  # patientNNN_frame01 (ED) / frame02 (ES)
        with h5py.File(f, "r") as h:
            image, label = np.asarray(h["image"]), np.asarray(h["label"])
        for z in range(image.shape[0]):
            item = _frame(image[z], (label[z] == 3).astype(np.uint8))
            patients.setdefault(name.split("_")[0], []).append({**item, "id": f"{name}_z{z}"})
    return patients


def load_sunnybrook() -> tuple[dict[str, list[dict]], list[dict]]:
    """Sunnybrook: labelled ED / ES frames by patient, and every frame of every clip unlabelled."""
    from monai_jepa.apps.datasets import sunnybrook_datalist
    from monai_jepa.data import load_cine, load_frame_mask

    datalist = sunnybrook_datalist(SHARED / "sunnybrook_cine")
    root = Path(datalist["root"])
    labelled: dict[str, list[dict]] = {}
    unlabelled: list[dict] = []
    for item in (i for s in ("training", "validation", "test") for i in datalist[s]):
        clip, _ = load_cine([str(root / p) for p in item["image"]])  # (C, T, H, W)
        frames = clip[0]
        unlabelled += [_frame(frames[t], None) for t in range(frames.shape[0])]
        for phase, t in item.get("label_frames", {}).items():
            mask = load_frame_mask(str(root / item[f"label_{phase}"]), frames.shape[1:]) > 0
            labelled.setdefault(item["patient_id"], []).append(
                {
                    **_frame(frames[t], mask.astype(np.uint8)),
                    "id": f"{item['patient_id']}_s{item['slice_index']}_{phase}",
                }
            )
    return labelled, unlabelled


def _unet(out_channels: int = 2) -> torch.nn.Module:
    from monai.networks.nets import UNet

    return UNet(2, 1, out_channels, channels=CHANNELS, strides=STRIDES, num_res_units=2)


def _model():
    from monai_jepa.networks import JEPAPredictor, MaskedConvEncoder, MaskedLatentModel

    enc = MaskedConvEncoder(_unet(), img_size=(SIZE, SIZE))
    return MaskedLatentModel(enc, JEPAPredictor(enc.grid_size, enc.embed_dim, predictor_dim=192, depth=4, num_heads=6))


def pretrain(model, frames: list[dict], steps: int, seed: int, batch_size: int = 16, lr: float = 1e-3) -> dict:
    """Masked latent pretraining of ``model`` on unlabelled frames for exactly ``steps`` iterations (in place)."""
    from ignite.engine import Events
    from monai.data import DataLoader, Dataset
    from monai.handlers import LrScheduleHandler
    from monai.transforms import Compose, RandFlipd, RandRotate90d

    from monai_jepa.engines import MaskedLatentTrainer, warmup_cosine
    from monai_jepa.losses import MaskedLatentLoss
    from monai_jepa.transforms import MultiBlockMaskGenerator

    aug = Compose([RandFlipd("image", 0.5, 0), RandFlipd("image", 0.5, 1), RandRotate90d("image", 0.5)])
    ds = Dataset([{"image": f["image"]} for f in frames], aug)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=True)
    grid = model.encoder.grid_size
    masks = MultiBlockMaskGenerator(grid, 4, (0.15, 0.2), min_keep=max(1, min(10, int(np.prod(grid)) // 4)), seed=seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    sched = warmup_cosine(opt, warmup_steps=max(1, steps // 20), total_steps=steps)
    log: list[dict] = []
    trainer = MaskedLatentTrainer(
        device="cpu", max_epochs=1, epoch_length=steps, train_data_loader=loader, network=model, optimizer=opt,
        loss_function=MaskedLatentLoss(lamb=0.05), mask_fn=masks, amp="auto", seed=seed,
        train_handlers=[LrScheduleHandler(sched, print_lr=False, epoch_level=False)],
    )  # fmt: skip

    @trainer.on(Events.ITERATION_COMPLETED(every=50) | Events.COMPLETED)
    def _log(engine):
        out = engine.state.output
        log.append({"iteration": engine.state.iteration, **{k: float(out[k]) for k in OUT_KEYS if k in out}})

    start = time.perf_counter()
    trainer.run()
    return {"steps": trainer.state.iteration, "seconds": round(time.perf_counter() - start, 1), "log": log}


def run(
    seeds=(0, 1, 2),
    pretrain_steps: int = 1200,
    continue_steps: int = 400,
    steps_a: int = 600,
    steps_b: int = 200,
    site_b_share: float = 0.5,
    work: str = "/tmp/cross_site_lv",
    threads: int = 2,
) -> None:
    """Pretrain (per seed), then the cross-site sweep of every method; one JSON per seed."""
    from monai_jepa.evaluation import cross_site_sweep

    torch.set_num_threads(threads)
    acdc, (sb_labelled, sb_unlabelled) = load_acdc(), load_sunnybrook()
    acdc_ids, sb_ids = sorted(acdc), sorted(sb_labelled)
    for seed in seeds:
        rng = np.random.RandomState(seed)
        order = [acdc_ids[k] for k in rng.permutation(len(acdc_ids))]
        a_train, a_test = order[:24], order[24:]
        sb_order = [sb_ids[k] for k in rng.permutation(len(sb_ids))]
        pool_ids, test_ids = sb_order[:2], sb_order[2:]
        a_items = [f for p in a_train for f in acdc[p]]
        pool = [f for p in pool_ids for f in sb_labelled[p]]
        counts = [0, len(sb_labelled[pool_ids[0]]), len(pool)]
        out = Path(work) / f"seed_{seed}"
        out.mkdir(parents=True, exist_ok=True)
        weights, logs = {}, {}
        for name, base, frames, steps in (
            ("ssl_acdc", None, a_items, pretrain_steps),
            ("ssl_acdc+sunnybrook", "ssl_acdc", sb_unlabelled, continue_steps),
            ("ssl_acdc_longer", "ssl_acdc", a_items, continue_steps),
        ):
            path = out / f"{name}.pt"
            if not path.is_file():
                torch.manual_seed(seed)
                model = _model()
                if base is not None:
                    model.load_state_dict(torch.load(out / f"{base}.pt", weights_only=True))
                logs[name] = pretrain(model, frames, steps, seed)
                torch.save(model.state_dict(), path)
                atomic_write_text(out / f"{name}.json", json.dumps(logs[name]))
                print(name, logs[name]["seconds"], logs[name]["log"][-1], flush=True)
            else:
                logs[name] = json.loads((out / f"{name}.json").read_text())
            weights[name] = path

        def factory(name):
            def make():
                net = _unet()
                if name != "scratch":
                    state = torch.load(weights[name], weights_only=True)
                    net.load_state_dict(
                        {k[len("encoder.net.") :]: v for k, v in state.items() if k.startswith("encoder.net.")}
                    )
                return net

            return make

        start = time.perf_counter()
        records = cross_site_sweep(
            {m: factory(m) for m in METHODS}, a_items, pool, [f for p in test_ids for f in sb_labelled[p]], counts,
            num_classes=2, steps_a=steps_a, steps_b=steps_b, seed=seed,
            site_a_test=[f for p in a_test for f in acdc[p]], batch_size=8, flip_axes=(0, 1), site_b_share=site_b_share,
        )  # fmt: skip
        for r in records:
            r["site_b_patients"] = counts.index(r["site_b_labels"])
            r.pop("dice_per_case", None)
            if r.get("site_a"):
                r["site_a"].pop("dice_per_case", None)
        result = {
            "seed": seed,
            **provenance(),
            "acdc_train_patients": a_train,
            "acdc_test_patients": a_test,
            "sunnybrook_pool_patients": pool_ids,
            "sunnybrook_test_patients": test_ids,
            "num_frames": {"acdc_train": len(a_items), "sunnybrook_unlabelled": len(sb_unlabelled),
                           "sunnybrook_pool": counts, "sunnybrook_test": sum(len(sb_labelled[p]) for p in test_ids)},
            "settings": {"pretrain_steps": pretrain_steps, "continue_steps": continue_steps, "steps_a": steps_a,
                         "steps_b": steps_b, "site_b_share": site_b_share, "size": SIZE, "threads": threads},
            "pretraining": logs,
            "sweep_seconds": round(time.perf_counter() - start, 1),
            "records": records,
        }  # fmt: skip
        RESULTS.mkdir(parents=True, exist_ok=True)
        atomic_write_text(RESULTS / f"seed_{seed}.json", json.dumps(result, indent=4) + "\n")


def report() -> str:
    """``results.md`` and ``dice.png`` from the ``seed_<s>.json`` files (site-B labels counted in patients)."""
    from monai_jepa.evaluation import format_cross_site_report, plot_cross_site

    runs = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("seed_*.json"))]
    if not runs:
        raise FileNotFoundError(f"no seed_<s>.json under '{RESULTS}': run `python -m benchmarks.cross_site_lv run`.")
    records = [r for run_ in runs for r in run_["records"]]
    title = "ACDC -> Sunnybrook LV cavity (2D UNet)"
    table = format_cross_site_report(records, reference="scratch", count_key="site_b_patients", title=title)
    plot_cross_site(records, RESULTS / "dice.png", count_key="site_b_patients", title=title)
    first = runs[0]
    pre = {k: [r["pretraining"][k]["steps"] for r in runs] for k in first["pretraining"]}
    lines = [
        table,
        f"Seeds {[r['seed'] for r in runs]}; {first['machine']['cpu']}, torch {first['machine']['torch']}; "
        f"commits {sorted({r['commit'] for r in runs})}; dates {[r['date'][:10] for r in runs]}.",
        f"Frames (seed {first['seed']}): {first['num_frames']}. Settings: {first['settings']}. Pretraining steps "
        f"per seed: {pre}. Seconds: pretraining "
        + ", ".join(f"{k} {np.mean([r['pretraining'][k]['seconds'] for r in runs]):.0f}" for k in pre)
        + f"; sweep {np.mean([r['sweep_seconds'] for r in runs]):.0f} (means over seeds).",
        "",
        "Commands: `" + "`, `".join(sorted({r["command"] for r in runs})) + "`, then "
        "`python -m benchmarks.cross_site_lv report`.",
    ]
    text = "\n".join(lines) + "\n"
    atomic_write_text(RESULTS / "results.md", text)
    return text


if __name__ == "__main__":
    fire.Fire({"run": run, "report": report})
