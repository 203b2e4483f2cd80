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
"""Atomic, exactly-resumable training checkpoints."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from monai.utils import IgniteInfo, min_version, optional_import

from monai_jepa.engines.rng import capture_rng_state, restore_rng_state
from monai_jepa.utils.dist import get_rank
from monai_jepa.utils.fileio import CheckpointReadError, atomic_torch_save, atomic_write_text, load_checkpoint_file

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["JEPACheckpointer", "atomic_torch_save", "latest_checkpoint", "unwrap_network"]

CHECKPOINT_FORMAT_VERSION = 1
_RESERVED = ("engine", "rng", "grads", "grad_scaler", "format_version")


def unwrap_network(network: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside ``torch.compile``, ``DataParallel`` and ``DistributedDataParallel`` wrappers."""
    while True:
        if hasattr(network, "_orig_mod"):
            network = network._orig_mod
        elif isinstance(network, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
            network = network.module
        else:
            return network


def latest_checkpoint(save_dir: str | os.PathLike, file_prefix: str = "checkpoint") -> Path | None:
    """The checkpoint named by the ``{file_prefix}_latest.txt`` pointer in ``save_dir``, or None without pointer.

    The pointer may only name a checkpoint file of ``save_dir`` itself (``{file_prefix}_<iteration>.pt``): a path, a
    ``..`` or a link out of the folder is refused.

    Raises:
        FileNotFoundError: when the pointer names a file that does not exist.
        ValueError: when the pointer names anything but a checkpoint file of ``save_dir``.
    """
    pointer = Path(save_dir) / f"{file_prefix}_latest.txt"
    if not pointer.is_file():
        return None
    name = pointer.read_text().strip()
    path = Path(save_dir) / name
    if not _checkpoint_name(file_prefix).fullmatch(name) or path.is_symlink():
        raise ValueError(
            f"the pointer '{pointer}' names '{name}', which is not a checkpoint file of that folder (expected "
            f"'{file_prefix}_<iteration>.pt', no path, no link)."
        )
    if not path.is_file():
        raise FileNotFoundError(f"the pointer '{pointer}' names checkpoint '{name}', which does not exist.")
    return path


def _checkpoint_name(file_prefix: str) -> re.Pattern:
    return re.compile(rf"{re.escape(file_prefix)}_(\d+)\.pt")


class JEPACheckpointer:
    """Periodic, final and atomic checkpoints with exact resume, for :class:`monai_jepa.engines.LeJEPATrainer`.

    Every ``save_interval`` iterations and when the run completes or is terminated (time limit, ``terminate()``),
    rank 0 writes ``{file_prefix}_{iteration:08d}.pt`` holding the network (unwrapped from DDP / ``torch.compile``),
    the optimizer, the loss module (SIGReg's step counter), the objects of ``save_dict`` (e.g. the LR scheduler),
    the engine progress (``iteration``, ``epoch_length``, ``seed``), the RNG states (torch CPU / CUDA, numpy,
    Python ``random``, the trainer's view generator and ``generators``), the accumulated gradients when
    ``accumulation_steps > 1`` and the ``GradScaler`` state. Files are written atomically (temporary file in the same
    folder, fsync, ``os.replace``), then the pointer file ``{file_prefix}_latest.txt`` is replaced the same way, and
    only the ``n_saved`` newest checkpoints are kept. Everything loads with ``torch.load(..., weights_only=True)``.
    A run stopped by a non-finite loss writes nothing, so the last checkpoint is the last good state.

    With ``resume_from``, everything is restored when the run starts, and the run continues as if never interrupted
    (see :class:`~monai_jepa.engines.LeJEPATrainer` for the conditions on the data loader). The periodic save is
    registered when the run starts, so it follows every other iteration handler (e.g. the LR scheduler step) whatever
    the order of ``train_handlers``. In distributed runs attach it on every rank: it writes on rank 0 only, and
    restores RNG states on rank 0 only (the other ranks rely on the trainer's per-epoch reseeding, so a distributed
    resume is exact at epoch boundaries).

    Why not MONAI's ``CheckpointSaver`` / ``CheckpointLoader`` (Ignite ``Checkpoint``): Ignite restarts an
    interrupted epoch from its first batch and holds no RNG state, so a run resumed mid-epoch would see other batches
    and other random views than the uninterrupted run; this checkpointer saves the RNG states and the position in the
    epoch, and the trainer skips the batches already used (replaying their random transforms) before restoring them,
    which makes the resumed run bit-identical (``tests/engines/test_checkpoint.py``). MONAI 1.6.1's
    ``CheckpointSaver`` also writes with ``DiskSaver(atomic=False)``, so a run killed while saving can leave a
    truncated file as the newest checkpoint.

    Args:
        save_dir: folder of the checkpoints (created if needed).
        save_dict: extra or replacement objects with ``state_dict`` / ``load_state_dict``, e.g.
            ``{"lr_scheduler": scheduler}``. Added to the defaults ``{"model": engine.network,
            "optimizer": engine.optimizer, "loss": engine.loss_function}`` (the loss when it is an ``nn.Module``).
        save_interval: save every this many iterations (``None`` or 0: only at the end of the run).
        n_saved: number of checkpoint files to keep (``None``: all).
        resume_from: ``None`` (fresh start), a checkpoint path, ``"latest"`` (the pointer in ``save_dir``; an error
            when there is none) or ``"auto"`` (``"latest"`` when a pointer exists, else a fresh start).
        generators: extra seedable objects whose states are saved and restored (see
            :func:`monai_jepa.engines.capture_rng_state`), e.g. a data-side view generator.
        file_prefix: prefix of the file names.
        save_final: save when the run completes or terminates (default True).

    Example::

        checkpointer = JEPACheckpointer("./models", save_dict={"lr_scheduler": sched}, save_interval=500,
                                        resume_from="auto")
        trainer = LeJEPATrainer(..., train_handlers=[lr_handler, stats_handler, checkpointer])
        # weights for downstream use:
        state = torch.load("./models/checkpoint_00001000.pt", weights_only=True)["model"]
    """

    def __init__(
        self,
        save_dir: str | os.PathLike,
        save_dict: Mapping[str, Any] | None = None,
        save_interval: int | None = 1000,
        n_saved: int | None = 3,
        resume_from: str | os.PathLike | None = None,
        generators: Sequence[Any] | None = None,
        file_prefix: str = "checkpoint",
        save_final: bool = True,
    ) -> None:
        if save_interval is not None and (int(save_interval) != save_interval or save_interval < 0):
            raise ValueError(f"save_interval must be None or a non-negative integer, got {save_interval!r}.")
        if n_saved is not None and (int(n_saved) != n_saved or n_saved < 1):
            raise ValueError(f"n_saved must be None or a positive integer, got {n_saved!r}.")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", file_prefix):
            raise ValueError(
                f"file_prefix must be a plain file-name prefix (letters, digits, _ . -), got {file_prefix!r}."
            )
        save_dict = dict(save_dict or {})
        for key, obj in save_dict.items():
            if key in _RESERVED:
                raise ValueError(f"save_dict key '{key}' is reserved; the reserved keys are {_RESERVED}.")
            if not (callable(getattr(obj, "state_dict", None)) and callable(getattr(obj, "load_state_dict", None))):
                raise ValueError(f"save_dict['{key}'] must have state_dict() and load_state_dict(), got {type(obj)}.")
        self.save_dir = Path(save_dir)
        self.save_dict = save_dict
        self.save_interval = int(save_interval) if save_interval else 0
        self.n_saved = n_saved
        self.resume_from = resume_from
        self.generators = list(generators or [])
        self.file_prefix = file_prefix
        self.save_final = save_final
        self.logger = logging.getLogger(self.__class__.__name__)
        self._last_saved_iteration: int | None = None
        self._started = False

    # ------------------------------------------------------------------ public API
    def attach(self, engine: Engine) -> None:
        """Register the resume, periodic-save and final-save handlers on ``engine``."""
        engine.add_event_handler(Events.STARTED, self._on_started)
        if self.save_final:
            engine.add_event_handler(Events.TERMINATE, self.save)
            engine.add_event_handler(Events.COMPLETED, self.save)

    @property
    def pointer_file(self) -> Path:
        """The file naming the newest checkpoint."""
        return self.save_dir / f"{self.file_prefix}_latest.txt"

    def checkpoint_path(self, iteration: int) -> Path:
        """The file name of the checkpoint written at ``iteration``."""
        return self.save_dir / f"{self.file_prefix}_{iteration:08d}.pt"

    def save(self, engine: Engine) -> Path | None:
        """Write a checkpoint of the current state (rank 0 only); returns its path, or None when nothing was written.

        Nothing is written twice for the same iteration, nor when the last loss is not finite.
        """
        iteration = int(engine.state.iteration)
        if get_rank() != 0 or iteration == self._last_saved_iteration:
            return None
        output = engine.state.output
        loss = output.get("loss") if isinstance(output, Mapping) else None
        if isinstance(loss, (float, int, torch.Tensor)) and not math.isfinite(float(loss)):
            self.logger.warning(f"not saving a checkpoint at iteration {iteration}: the loss is not finite.")
            return None
        ckpt: dict[str, Any] = {
            "format_version": CHECKPOINT_FORMAT_VERSION,
            "engine": dict(engine.state_dict()),
            "rng": capture_rng_state(self._generators(engine)),
        }
        for key, obj in self._objects(engine).items():
            ckpt[key] = obj.state_dict()
        if getattr(engine, "accumulation_steps", 1) > 1:
            net = unwrap_network(engine.network)
            ckpt["grads"] = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
        scaler = getattr(engine, "scaler", None)
        if scaler is not None:
            ckpt["grad_scaler"] = scaler.state_dict()

        self.save_dir.mkdir(parents=True, exist_ok=True)
        path = self.checkpoint_path(iteration)
        atomic_torch_save(ckpt, path)
        atomic_write_text(self.pointer_file, f"{path.name}\n")
        self._last_saved_iteration = iteration
        self._prune(keep=path)
        self.logger.info(f"saved checkpoint '{path}' at iteration {iteration}.")
        return path

    def load(self, engine: Engine, path: str | os.PathLike) -> None:
        """Restore everything saved by :meth:`save` from ``path`` into ``engine`` and the saved objects.

        Raises:
            FileNotFoundError: when ``path`` does not exist.
            CheckpointReadError: when the file cannot be read (empty, corrupt, truncated, not a checkpoint) or lacks
                an entry; nothing has been restored then.
            RuntimeError: when the saved state does not fit the engine's objects (another network, say).
        """
        path = Path(path)
        ckpt = load_checkpoint_file(path)
        if not isinstance(ckpt, Mapping) or "engine" not in ckpt or "rng" not in ckpt:
            raise CheckpointReadError(f"'{path}' is not a JEPACheckpointer checkpoint (no 'engine' / 'rng' entries).")
        objects = self._objects(engine)
        missing = [k for k in objects if k not in ckpt]
        if missing:
            raise CheckpointReadError(f"checkpoint file '{path}' has no entries {missing}; it holds {sorted(ckpt)}.")
        try:
            for key, obj in objects.items():
                obj.load_state_dict(ckpt[key])
            if "grads" in ckpt:
                params = dict(unwrap_network(engine.network).named_parameters())
                for name, grad in ckpt["grads"].items():
                    params[name].grad = grad.to(params[name].device)
            scaler = getattr(engine, "scaler", None)
            if scaler is not None and "grad_scaler" in ckpt:
                scaler.load_state_dict(ckpt["grad_scaler"])
            engine.load_state_dict(ckpt["engine"])
            if get_rank() == 0:
                generators = self._generators(engine)
                if hasattr(engine, "resume_rng_state"):
                    engine.resume_rng_state(ckpt["rng"], generators)
                else:
                    restore_rng_state(ckpt["rng"], generators)
        except Exception as e:
            raise RuntimeError(f"could not restore the state saved in checkpoint file '{path}': {e}") from e
        self._last_saved_iteration = int(engine.state.iteration)
        self.logger.info(f"resumed from checkpoint '{path}' at iteration {engine.state.iteration}.")

    # ------------------------------------------------------------------ internals
    def _objects(self, engine: Engine) -> dict[str, Any]:
        objects: dict[str, Any] = {"model": unwrap_network(engine.network), "optimizer": engine.optimizer}
        loss = getattr(engine, "loss_function", None)
        if isinstance(loss, torch.nn.Module):
            objects["loss"] = loss
        objects.update(self.save_dict)
        return objects

    def _generators(self, engine: Engine) -> list[Any]:
        gens = list(getattr(engine, "rng_generators", [])) + self.generators
        return list({id(g): g for g in gens}.values())

    def _resume(self, engine: Engine) -> None:
        """Load ``resume_from``. With ``"latest"`` / ``"auto"``, a newest checkpoint that is missing or unreadable is
        skipped with a warning for the next older readable one in the folder (an error when none is)."""
        if self.resume_from is None:
            return
        if str(self.resume_from) not in ("latest", "auto"):
            self.load(engine, self.resume_from)
            return
        if not self.pointer_file.is_file():
            if str(self.resume_from) == "latest":
                raise FileNotFoundError(
                    f"resume_from='latest' but there is no pointer file '{self.pointer_file}'; use resume_from='auto' "
                    "to start fresh when no checkpoint exists."
                )
            return
        pattern = _checkpoint_name(self.file_prefix)
        older = sorted(
            (p for p in self.save_dir.iterdir() if pattern.fullmatch(p.name) and not p.is_symlink()),
            key=lambda p: int(pattern.fullmatch(p.name).group(1)),  # type: ignore[union-attr]
            reverse=True,
        )
        first: Exception | None = None
        try:
            candidates = [latest_checkpoint(self.save_dir, self.file_prefix)]
        except FileNotFoundError as e:
            first, candidates = e, []
        for path in candidates + [p for p in older if p not in candidates]:
            try:
                self.load(engine, path)  # type: ignore[arg-type]
            except CheckpointReadError as e:
                first = first or e
                self.logger.warning(f"skipping checkpoint '{path}': {e}")
                continue
            if first is not None:
                self.logger.warning(
                    f"resumed from the older checkpoint '{path}' because the newest is unusable: {first}"
                )
            return
        if first is not None:
            raise first

    def _remove_stale_temporaries(self) -> None:
        """Delete the temporary files of checkpoint writes whose process no longer runs (a write killed mid-way)."""
        if get_rank() != 0 or not self.save_dir.is_dir():
            return
        pattern = re.compile(rf"\.{re.escape(self.file_prefix)}_(\d+\.pt|latest\.txt)\.(\d+)\.[0-9a-f]{{8}}\.tmp")
        for p in self.save_dir.iterdir():
            m = pattern.fullmatch(p.name)
            if m and not _process_alive(int(m.group(2))):
                with contextlib.suppress(OSError):
                    p.unlink()
                    self.logger.warning(f"removed '{p}', the temporary file of an interrupted checkpoint write.")

    def _on_started(self, engine: Engine) -> None:
        if not self._started:  # resume only at the first run(); later run() calls continue in memory
            self._started = True
            self._remove_stale_temporaries()
            self._resume(engine)
            if self.save_interval:  # registered now, so it runs after the handlers attached before the run
                engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.save_interval), self.save)

    def _prune(self, keep: Path) -> None:
        if self.n_saved is None:
            return
        pattern = _checkpoint_name(self.file_prefix)
        files = sorted(
            (int(m.group(1)), p) for p in self.save_dir.iterdir() if (m := pattern.fullmatch(p.name)) and p != keep
        )
        for _, p in files[: max(0, len(files) - (self.n_saved - 1))]:
            with contextlib.suppress(OSError):
                p.unlink()


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to another user
        return True
    return True
