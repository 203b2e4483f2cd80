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
"""Logging helpers for the trainer's scalar output: TensorBoard and a tqdm progress bar."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from monai.handlers import TensorBoardStatsHandler
from monai.utils import IgniteInfo, min_version, optional_import

from monai_jepa.engines.trainer import OUTPUT_KEYS
from monai_jepa.utils.module import require_package

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
ProgressBar, _has_pbar = optional_import("ignite.handlers", name="ProgressBar")
if not _has_pbar:  # pytorch-ignite < 0.5
    ProgressBar, _ = optional_import("ignite.contrib.handlers", name="ProgressBar")
SummaryWriter, _ = optional_import("torch.utils.tensorboard", name="SummaryWriter")

__all__ = ["jepa_scalars", "attach_tensorboard", "JEPAProgressBar"]


def jepa_scalars(output: Any) -> dict[str, float]:
    """The scalar entries of a :class:`~monai_jepa.engines.LeJEPATrainer` output (``OUTPUT_KEYS`` present in it).

    Usable as the ``output_transform`` of MONAI's ``StatsHandler`` / ``TensorBoardStatsHandler``, e.g. in a bundle:
    ``{"_target_": "TensorBoardStatsHandler", "log_dir": "@output_dir", "output_transform":
    "$monai_jepa.engines.jepa_scalars"}``.

    Args:
        output: ``engine.state.output``.

    Returns:
        ``{"loss": ..., "pred": ..., "sigreg": ..., "lr": ..., "embedding_std": ..., "effective_rank": ...}``
        (empty when ``output`` is not a mapping).
    """
    if not isinstance(output, Mapping):
        return {}
    return {k: float(output[k]) for k in OUTPUT_KEYS if k in output}


def attach_tensorboard(
    engine: Engine,
    log_dir: str | os.PathLike = "./runs",
    interval: int = 1,
    tag_prefix: str = "",
    summary_writer: Any | None = None,
) -> TensorBoardStatsHandler:
    """Log the trainer's scalars (``loss``, ``pred``, ``sigreg``, ``lr``, ``embedding_std``, ``effective_rank``).

    Attaches a MONAI ``TensorBoardStatsHandler`` writing ``f"{tag_prefix}{name}"`` every ``interval`` iterations
    (step = iteration) and flushes the writer at the end of every epoch and of the run.

    Args:
        engine: the trainer.
        log_dir: TensorBoard folder (ignored when ``summary_writer`` is given).
        interval: write every this many iterations.
        tag_prefix: prefix of the tags, e.g. ``"train/"``.
        summary_writer: an existing ``SummaryWriter`` to write to.

    Returns:
        the attached handler (call ``handler.close()`` to close its writer).

    Example::

        handler = attach_tensorboard(trainer, "./runs/lejepa", tag_prefix="train/")
        trainer.run()
    """
    if int(interval) != interval or interval < 1:
        raise ValueError(f"interval must be a positive integer, got {interval!r}.")
    if summary_writer is None:
        require_package("tensorboard", "monai_jepa.engines.attach_tensorboard", "TensorBoard logs")
    writer = SummaryWriter(log_dir=str(log_dir)) if summary_writer is None else summary_writer
    handler = TensorBoardStatsHandler(
        summary_writer=writer,
        iteration_log=True if interval == 1 else int(interval),
        epoch_log=False,
        output_transform=lambda out: {f"{tag_prefix}{k}": v for k, v in jepa_scalars(out).items()},
    )
    handler.attach(engine)
    engine.add_event_handler(Events.EPOCH_COMPLETED | Events.COMPLETED | Events.TERMINATE, lambda _: writer.flush())
    handler.internal_writer = summary_writer is None  # close() closes only the writer created here
    return handler


class JEPAProgressBar:
    """A tqdm progress bar (Ignite ``ProgressBar``) showing some of the trainer's scalars; a ``train_handlers`` entry.

    Args:
        keys: output entries shown next to the bar (default ``("loss", "pred", "sigreg")``).
        persist: keep the bar of each finished epoch on screen.
        tqdm_kwargs: other arguments of Ignite's ``ProgressBar`` / ``tqdm``.

    Example::

        trainer = LeJEPATrainer(..., train_handlers=[JEPAProgressBar()])
    """

    def __init__(self, keys: Sequence[str] = ("loss", "pred", "sigreg"), persist: bool = False, **tqdm_kwargs: Any):
        self.keys = tuple(keys)
        self.persist = persist
        self.tqdm_kwargs = tqdm_kwargs
        self.bar: Any = None

    def _transform(self) -> Callable[[Any], dict[str, float]]:
        keys = self.keys
        return lambda out: {k: v for k, v in jepa_scalars(out).items() if k in keys}

    def attach(self, engine: Engine) -> None:
        """Create the bar and attach it to ``engine``."""
        require_package("tqdm", "monai_jepa.engines.JEPAProgressBar", "the progress bar")
        self.bar = ProgressBar(persist=self.persist, **self.tqdm_kwargs)
        self.bar.attach(engine, output_transform=self._transform())
