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
"""Logging helpers for the trainer's scalar output: TensorBoard, and progress with its ETA (a tqdm bar in a terminal,
plain log lines elsewhere)."""

from __future__ import annotations

import datetime
import logging
import os
import sys
import time
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
    """Progress of a run with its ETA: a tqdm bar (Ignite ``ProgressBar``) showing some of the trainer's scalars when
    the output is a terminal, plain log lines otherwise (a log file, a cluster job, CI); a ``train_handlers`` entry.

    Without a terminal, every ``log_every`` iterations and at the end, the logger ``monai_jepa.progress`` writes one
    INFO line: ``iteration 120/900 (13%), epoch 2/15, elapsed 0:01:02, ETA 0:06:45`` and the chosen scalars. The ETA
    is the remaining iterations at the mean speed of this run so far, capped by the trainer's ``time_limit_minutes``
    when it has one.

    Args:
        keys: output entries shown next to the bar or in the lines (default ``("loss", "pred", "sigreg")``).
        persist: keep the bar of each finished epoch on screen.
        tty: ``True`` for the bar, ``False`` for log lines; ``None`` (default): the bar when standard error is a
            terminal or a ``file`` is given, else log lines.
        log_every: iterations between two log lines.
        tqdm_kwargs: other arguments of Ignite's ``ProgressBar`` / ``tqdm``.

    Example::

        trainer = LeJEPATrainer(..., train_handlers=[JEPAProgressBar()])
    """

    def __init__(
        self,
        keys: Sequence[str] = ("loss", "pred", "sigreg"),
        persist: bool = False,
        tty: bool | None = None,
        log_every: int = 50,
        **tqdm_kwargs: Any,
    ) -> None:
        if int(log_every) != log_every or log_every < 1:
            raise ValueError(f"log_every must be a positive integer, got {log_every!r}.")
        self.keys = tuple(keys)
        self.persist = persist
        self.tty = tty
        self.log_every = int(log_every)
        self.tqdm_kwargs = tqdm_kwargs
        self.bar: Any = None
        self.logger = logging.getLogger("monai_jepa.progress")
        self._start: tuple[float, int] = (0.0, 0)

    def _transform(self) -> Callable[[Any], dict[str, float]]:
        keys = self.keys
        return lambda out: {k: v for k, v in jepa_scalars(out).items() if k in keys}

    def attach(self, engine: Engine) -> None:
        """Attach the bar (terminal) or the periodic log lines to ``engine``."""
        interactive = self.tty if self.tty is not None else ("file" in self.tqdm_kwargs or sys.stderr.isatty())
        if interactive:
            require_package("tqdm", "monai_jepa.engines.JEPAProgressBar", "the progress bar")
            self.bar = ProgressBar(persist=self.persist, **self.tqdm_kwargs)
            self.bar.attach(engine, output_transform=self._transform())
            return
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.log_every), self._log_line)
        engine.add_event_handler(Events.COMPLETED | Events.TERMINATE, self._log_line)

    def _started(self, engine: Engine) -> None:
        self._start = (time.monotonic(), int(engine.state.iteration))

    def _log_line(self, engine: Engine) -> None:
        state = engine.state
        total = int(state.max_epochs or 0) * int(state.epoch_length or 0)
        done, (t0, first) = int(state.iteration), self._start
        elapsed = time.monotonic() - t0
        rate = (done - first) / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 and total >= done else float("inf")
        limit = getattr(engine, "time_limit_minutes", None)
        if limit is not None:
            eta = min(eta, max(0.0, 60.0 * limit - elapsed))
        clock = lambda sec: "unknown" if sec == float("inf") else str(datetime.timedelta(seconds=round(sec)))  # noqa
        pct = f" ({100 * done / total:.0f}%)" if total else ""
        scalars = " ".join(f"{k}={v:.4g}" for k, v in self._transform()(state.output).items())
        self.logger.info(
            f"iteration {done}/{total or '?'}{pct}, epoch {state.epoch}/{state.max_epochs}, elapsed {clock(elapsed)}, "
            f"ETA {clock(eta)} {scalars}".rstrip()
        )
