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

import os

import pytest
import torch
from ignite.engine import Events
from monai.data import DataLoader as MonaiDataLoader
from monai.data import Dataset as MonaiDataset
from monai.handlers import LrScheduleHandler
from monai.transforms import Compose, RandFlipd, RandGaussianNoised
from torch.utils.data import DataLoader, Dataset

from monai_jepa.engines import JEPACheckpointer, LeJEPATrainer, atomic_torch_save, latest_checkpoint, warmup_cosine
from monai_jepa.losses import LeJEPALoss
from monai_jepa.transforms import BatchMultiView

MAX_EPOCHS, N_SAMPLES, BATCH = 3, 10, 2  # 5 iterations per epoch, 15 in all


class NoisyImages(Dataset):
    """Fixed images plus data-side noise drawn from the global torch RNG (like a random transform)."""

    def __init__(self):
        self.x = torch.rand(N_SAMPLES, 1, 12, 12, generator=torch.Generator().manual_seed(123))

    def __len__(self):
        return N_SAMPLES

    def __getitem__(self, i):
        return {"image": self.x[i] + 0.05 * torch.randn(1, 12, 12)}


def _loader(monai_data: bool = False, num_workers: int = 0) -> DataLoader:
    if not monai_data:
        return DataLoader(NoisyImages(), batch_size=BATCH, shuffle=True, num_workers=num_workers)
    images = NoisyImages().x
    transform = Compose([RandGaussianNoised("image", prob=1.0, std=0.05), RandFlipd("image", prob=0.5)])
    dataset = MonaiDataset([{"image": im} for im in images], transform=transform)
    return MonaiDataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=num_workers)


def _setup(
    save_dir,
    init_seed=0,
    seed=11,
    accumulation_steps=1,
    monai_data=False,
    num_workers=0,
    health_interval=1,
    **ck_kwargs,
):
    """A tiny but complete pretraining run: BN + dropout network, LeJEPA loss, views from a seeded generator,
    shuffled loader with data-side randomness, per-iteration warmup-cosine schedule, checkpointer."""
    torch.manual_seed(init_seed)  # a different value scrambles every global RNG and the initial weights
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(4, 8),
    )
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    sched = warmup_cosine(opt, 3, MAX_EPOCHS * N_SAMPLES // BATCH)
    ck = JEPACheckpointer(save_dir, save_dict={"lr_scheduler": sched}, **ck_kwargs)
    trainer = LeJEPATrainer(
        device="cpu",
        max_epochs=MAX_EPOCHS,
        train_data_loader=_loader(monai_data, num_workers),
        network=net,
        optimizer=opt,
        loss_function=LeJEPALoss(num_slices=16),
        views_fn=BatchMultiView(num_global=2, num_local=2, global_size=8, local_size=6, seed=7),
        accumulation_steps=accumulation_steps,
        seed=seed,
        health_interval=health_interval,
        train_handlers=[LrScheduleHandler(sched, print_lr=False, epoch_level=False), ck],
    )
    outputs = {}
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED, lambda e: outputs.__setitem__(e.state.iteration, e.state.output)
    )
    return trainer, ck, outputs


# with gradient accumulation the first iteration steps the scheduler but not the optimizer
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
@pytest.mark.parametrize(
    "accumulation_steps, stop_at, monai_data, num_workers",
    [(1, 7, False, 0), (2, 8, False, 0), (1, 7, True, 0), (1, 7, True, 2)],
    ids=["global-rng-data", "accumulation-mid-step", "monai-transforms", "monai-transforms-2-workers"],
)
def test_exact_resume_mid_epoch_and_at_epoch_boundary(tmp_path, accumulation_steps, stop_at, monai_data, num_workers):
    kwargs = dict(accumulation_steps=accumulation_steps, monai_data=monai_data, num_workers=num_workers)
    reference, _, ref_out = _setup(tmp_path / "ref", save_interval=None, **kwargs)
    reference.run()
    assert sorted(ref_out) == list(range(1, 16))

    # interrupted run: periodic checkpoint at iteration 5 (end of epoch 1), terminated mid-epoch 2 at `stop_at`
    run, ck, out = _setup(tmp_path / "run", save_interval=5, n_saved=None, **kwargs)
    run.add_event_handler(Events.ITERATION_COMPLETED(once=stop_at), lambda e: e.terminate())
    run.run()
    assert run.state.iteration == stop_at and latest_checkpoint(ck.save_dir) == ck.checkpoint_path(stop_at)
    assert [out[i] for i in range(1, stop_at + 1)] == [ref_out[i] for i in range(1, stop_at + 1)]

    for start, resume_from in ((stop_at, "latest"), (5, ck.checkpoint_path(5))):
        # fresh objects, different initial weights and global RNG state, seed drawn at random: all restored
        resumed, _, res_out = _setup(
            tmp_path / "run", init_seed=999, seed=None, save_interval=None, resume_from=resume_from, **kwargs
        )
        resumed.run()
        assert sorted(res_out) == list(range(start + 1, 16))
        for i in res_out:
            assert res_out[i] == ref_out[i], f"iteration {i} (resumed from {start}) differs"
        for p, q in zip(resumed.network.state_dict().values(), reference.network.state_dict().values()):
            assert torch.equal(p, q)


def test_time_limit_writes_final_checkpoint_and_run_continues(tmp_path):
    reference, _, ref_out = _setup(tmp_path / "ref", save_interval=None)
    reference.run()
    trainer, ck, out = _setup(tmp_path / "run", save_interval=None)
    trainer.time_limit_minutes = 1e-9  # exceeded by the first iteration
    trainer.run()
    assert trainer.state.iteration == 1 and trainer.state.epoch == 1
    assert sorted(os.listdir(ck.save_dir)) == ["checkpoint_00000001.pt", "checkpoint_latest.txt"]
    saved = torch.load(ck.checkpoint_path(1), weights_only=True)
    assert saved["engine"]["iteration"] == 1
    # calling run() again on the same object continues mid-epoch, exactly as if never stopped
    trainer.time_limit_minutes = None
    trainer.run()
    assert trainer.state.iteration == 15 and out == ref_out
    assert latest_checkpoint(ck.save_dir) == ck.checkpoint_path(15)


def test_checkpoint_contents_load_weights_only_and_pruning(tmp_path):
    trainer, ck, _ = _setup(tmp_path, save_interval=2, n_saved=2)
    trainer.run()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["checkpoint_00000014.pt", "checkpoint_00000015.pt", "checkpoint_latest.txt"]
    assert (tmp_path / "checkpoint_latest.txt").read_text().strip() == "checkpoint_00000015.pt"
    ckpt = torch.load(tmp_path / "checkpoint_00000015.pt", weights_only=True)
    assert {"model", "optimizer", "loss", "lr_scheduler", "engine", "rng", "format_version"} <= set(ckpt)
    assert ckpt["engine"]["iteration"] == 15 and ckpt["engine"]["epoch_length"] == 5 and ckpt["engine"]["seed"] == 11
    assert int(ckpt["loss"]["sigreg.step"]) == 15  # SIGReg's direction counter
    assert ckpt["lr_scheduler"]["last_epoch"] == 15
    assert (
        set(ckpt["rng"]) == {"torch", "cuda", "numpy", "python", "generators"} and len(ckpt["rng"]["generators"]) == 1
    )
    for k, v in trainer.network.state_dict().items():
        assert torch.equal(ckpt["model"][k], v)


def test_failed_save_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    trainer, ck, _ = _setup(tmp_path, save_interval=1)
    trainer.run()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def failing_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    trainer.state.iteration = 15 + 1  # pretend one more iteration ran
    with pytest.raises(OSError, match="disk full"):
        ck.save(trainer)
    with pytest.raises(OSError, match="disk full"):  # overwriting an existing file fails the same way
        atomic_torch_save({"x": 1}, ck.checkpoint_path(15))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no partial or temporary files either
    monkeypatch.undo()
    assert torch.load(latest_checkpoint(tmp_path), weights_only=True)["engine"]["iteration"] == 15


def test_resume_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.pt"
    trainer, _, _ = _setup(tmp_path, resume_from=missing)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        trainer.run()
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage")
    trainer, _, _ = _setup(tmp_path, resume_from=corrupt)
    with pytest.raises(RuntimeError, match="corrupt.pt"):
        trainer.run()
    trainer, _, _ = _setup(tmp_path, resume_from="latest")
    with pytest.raises(FileNotFoundError, match="checkpoint_latest.txt"):
        trainer.run()
    # "auto" without a checkpoint starts fresh; with one it resumes (here: nothing left to do)
    trainer, _, out = _setup(tmp_path, resume_from="auto", save_interval=None)
    trainer.run()
    assert len(out) == 15
    trainer, _, out = _setup(tmp_path, resume_from="auto", save_interval=None)
    trainer.run()
    assert out == {} and trainer.state.iteration == 15
    # a checkpoint of another data length cannot be resumed
    other, _, _ = _setup(tmp_path, resume_from="latest")
    other.data_loader = DataLoader(NoisyImages(), batch_size=5)
    other.state.epoch_length = 2
    with pytest.raises(RuntimeError, match="epoch_length=5"):
        other.run()


def test_no_save_after_non_finite_loss(tmp_path):
    trainer, ck, _ = _setup(tmp_path)
    trainer.state.iteration = 3
    trainer.state.output = {"loss": float("nan")}
    assert ck.save(trainer) is None
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_invalid_arguments(tmp_path):
    with pytest.raises(ValueError, match="save_interval"):
        JEPACheckpointer(tmp_path, save_interval=-1)
    with pytest.raises(ValueError, match="n_saved"):
        JEPACheckpointer(tmp_path, n_saved=0)
    with pytest.raises(ValueError, match="reserved"):
        JEPACheckpointer(tmp_path, save_dict={"rng": torch.nn.Linear(1, 1)})
    with pytest.raises(ValueError, match="state_dict"):
        JEPACheckpointer(tmp_path, save_dict={"x": 3})


def test_resume_reports_the_health_values_of_the_uninterrupted_run(tmp_path):
    """With health_interval > 1 the embedding-health outputs between two checks repeat the last check; a run resumed
    between two checks reports the same values as the uninterrupted run (the values are checkpointed)."""
    reference, _, ref_out = _setup(tmp_path / "ref", save_interval=None, health_interval=4)
    reference.run()
    run, ck, _ = _setup(tmp_path / "run", save_interval=6, n_saved=None, health_interval=4)
    run.add_event_handler(Events.ITERATION_COMPLETED(once=6), lambda e: e.terminate())
    run.run()
    resumed, _, res_out = _setup(tmp_path / "run", save_interval=None, resume_from="latest", health_interval=4)
    resumed.run()
    assert sorted(res_out) == list(range(7, 16)) and all(res_out[i] == ref_out[i] for i in res_out)
    assert res_out[7]["effective_rank"] == ref_out[5]["effective_rank"]  # iteration 7 repeats the check of 5


def test_pointer_is_confined_to_the_folder(tmp_path):
    trainer, ck, _ = _setup(tmp_path / "run", save_interval=None)
    trainer.run()
    outside = tmp_path / "checkpoint_00000099.pt"
    outside.write_bytes((tmp_path / "run" / "checkpoint_00000015.pt").read_bytes())
    for name in ("../checkpoint_00000099.pt", str(outside), "model.pt"):
        ck.pointer_file.write_text(name + "\n")
        with pytest.raises(ValueError, match="not a checkpoint file of that folder"):
            latest_checkpoint(ck.save_dir)
    (tmp_path / "run" / "checkpoint_00000020.pt").symlink_to(outside)
    ck.pointer_file.write_text("checkpoint_00000020.pt\n")
    with pytest.raises(ValueError, match="no link"):
        latest_checkpoint(ck.save_dir)


@pytest.mark.parametrize("damage", ["zero-bytes", "truncated", "garbage", "missing"])
def test_resume_falls_back_to_the_newest_good_checkpoint(tmp_path, damage, caplog):
    reference, _, ref_out = _setup(tmp_path / "ref", save_interval=None)
    reference.run()
    run, ck, _ = _setup(tmp_path / "run", save_interval=5, n_saved=None)
    run.add_event_handler(Events.ITERATION_COMPLETED(once=12), lambda e: e.terminate())
    run.run()  # checkpoints at 5, 10 and 12 (final); the pointer names 12
    newest = ck.checkpoint_path(12)
    if damage == "missing":
        newest.unlink()
    else:
        data = newest.read_bytes()
        newest.write_bytes({"zero-bytes": b"", "truncated": data[: len(data) // 2], "garbage": b"\x80\x02junk"}[damage])
    resumed, _, res_out = _setup(tmp_path / "run", save_interval=None, resume_from="auto")
    with caplog.at_level("WARNING"):
        resumed.run()
    assert sorted(res_out) == list(range(11, 16)) and all(res_out[i] == ref_out[i] for i in res_out)
    assert "checkpoint_00000010.pt" in caplog.text and "checkpoint_00000012.pt" in caplog.text
    if damage == "zero-bytes":
        assert "is empty (0 bytes)" in caplog.text
    # every checkpoint unusable: the first error is raised, naming the newest file
    for p in ck.save_dir.glob("checkpoint_0*.pt"):
        p.write_bytes(b"")
    again, _, _ = _setup(tmp_path / "run", save_interval=None, resume_from="latest")
    with pytest.raises((RuntimeError, FileNotFoundError), match="checkpoint_00000012.pt|checkpoint_00000015.pt"):
        again.run()


def test_stale_temporary_files_are_removed_at_start(tmp_path, caplog):
    tmp_path.mkdir(exist_ok=True)
    stale = tmp_path / ".checkpoint_00000005.pt.999999999.0123abcd.tmp"  # no such process
    stale.write_bytes(b"half a checkpoint")
    live = tmp_path / f".checkpoint_00000006.pt.{os.getpid()}.0123abcd.tmp"  # a write in progress here
    live.write_bytes(b"being written")
    other = tmp_path / "notes.tmp"
    other.write_text("user file")
    trainer, _, _ = _setup(tmp_path, save_interval=None)
    with caplog.at_level("WARNING"):
        trainer.run()
    assert not stale.exists() and live.exists() and other.exists()
    assert "interrupted checkpoint write" in caplog.text
