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
"""Writing the embeddings (and, given a probe head, class probabilities) of an evaluator run.

- :class:`EmbeddingSaver`: a saver with the ``save_batch`` / ``finalize`` API of ``monai.data.CSVSaver``, writing
  ``.npy`` and ``.csv`` files atomically.
- :class:`EmbeddingWriter`: a ``monai.handlers.ClassificationSaver`` collecting features, ids and labels every
  iteration and handing them to an :class:`EmbeddingSaver` at the end of the epoch.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import torch
from monai.handlers import ClassificationSaver
from monai.utils import IgniteInfo, evenly_divisible_all_gather, min_version, optional_import, string_list_all_gather

from monai_jepa.networks.probe_head import ProbeHead
from monai_jepa.utils.fileio import atomic_write

idist, _ = optional_import("ignite", IgniteInfo.OPT_IMPORT_VERSION, min_version, "distributed")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["EmbeddingSaver", "EmbeddingWriter"]


def _rows(value: Any, n: int) -> list[Any]:
    """``value`` of a batch as a list of ``n`` items (a batched tensor is split, a scalar repeated)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return [value[i] for i in range(n)] if value.ndim else [value] * n
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value] * n


def _label_text(label: Any) -> str:
    """A label as CSV text: empty when absent, the values separated by spaces (``"0 1 1"`` for multi-label)."""
    if label is None:
        return ""
    arr = np.asarray(label.cpu() if isinstance(label, torch.Tensor) else label).reshape(-1)
    return " ".join(str(v.item()) for v in arr)


def _write_table(f: IO[str], header: Sequence[str], ids: Iterable[str], labels: Iterable[str], values: Any) -> None:
    writer = csv.writer(f)
    writer.writerow(header)
    for i, lab, row in zip(ids, labels, values):
        writer.writerow([i, lab, *[f"{v:.6g}" for v in row]])


class EmbeddingSaver:
    """Cache features with their ids and labels, and write them to files in ``output_dir`` on :meth:`finalize`.

    Files: ``{prefix}.npy`` (float32 ``(N, D)``), ``{prefix}.csv`` (``id``, ``label``, ``f0`` ... ``f{D-1}``) and,
    when ``probe_file`` exists (a :class:`~monai_jepa.networks.ProbeHead` file), ``probabilities.csv`` (``id``,
    ``label``, ``p_{class}`` per class; the positive class only for binary heads). Values in the CSV files have 6
    significant digits. Each file is written atomically (:func:`monai_jepa.utils.atomic_write`): a reader sees the
    previous file or the complete new one.

    Args:
        output_dir: destination folder (created when writing).
        prefix: file name stem of the embedding files.
        probe_file: optional probe head file; ignored when missing.

    Example::

        saver = EmbeddingSaver("./out")
        saver.save_batch(torch.rand(4, 16), {"id": ["a", "b", "c", "d"], "label": ["0", "1", "1", "0"]})
        files = saver.finalize()  # {"npy": out/embeddings.npy, "csv": out/embeddings.csv}
    """

    def __init__(
        self, output_dir: str | os.PathLike, prefix: str = "embeddings", probe_file: str | os.PathLike | None = None
    ) -> None:
        self.output_dir = Path(output_dir)
        self.prefix = prefix
        self.probe_file = None if probe_file is None else Path(probe_file)
        self.reset_cache()

    def reset_cache(self) -> None:
        """Clear the cached features, ids and labels."""
        self._features: list[torch.Tensor] = []
        self._ids: list[str] = []
        self._labels: list[str] = []

    def save_batch(
        self, batch_data: torch.Tensor | np.ndarray, meta_data: Mapping[str, Sequence[Any]] | None = None
    ) -> None:
        """Cache a batch of features.

        Args:
            batch_data: features ``(B, D)`` (or ``(B, *)``, flattened).
            meta_data: optional ``"id"`` and ``"label"`` lists of ``B`` items; missing ids are the row numbers,
                missing labels empty.
        """
        feats = torch.as_tensor(batch_data).detach().float().cpu()
        if feats.numel() == 0:
            return
        feats = feats.reshape(feats.shape[0], -1)
        n, start = feats.shape[0], len(self._ids)
        meta_data = meta_data or {}
        ids, labels = list(meta_data.get("id", [None] * n)), list(meta_data.get("label", [None] * n))
        self._features.append(feats)
        self._ids += [str(i) if i is not None else str(start + k) for k, i in enumerate(ids)]
        self._labels += [lab if isinstance(lab, str) else _label_text(lab) for lab in labels]

    def finalize(self) -> dict[str, Path]:
        """Write the cached features and clear the cache.

        Returns:
            the written files by kind (``"npy"``, ``"csv"``, ``"probabilities"``); empty when nothing was cached.
        """
        if not self._features:
            return {}
        feats = torch.cat(self._features).numpy().astype(np.float32)
        ids, labels = self._ids, self._labels
        self.output_dir.mkdir(parents=True, exist_ok=True)
        files = {"npy": self.output_dir / f"{self.prefix}.npy", "csv": self.output_dir / f"{self.prefix}.csv"}
        atomic_write(files["npy"], lambda f: np.save(f, feats))
        header = ["id", "label", *[f"f{j}" for j in range(feats.shape[1])]]
        atomic_write(files["csv"], lambda f: _write_table(f, header, ids, labels, feats), text=True)
        if self.probe_file is not None and self.probe_file.is_file():
            head = ProbeHead.from_file(self.probe_file)
            with torch.no_grad():
                probs = head(torch.from_numpy(feats)).numpy()
            names = head.class_names if head.task != "binary" else [head.class_names[-1]]
            files["probabilities"] = self.output_dir / "probabilities.csv"
            header = ["id", "label", *[f"p_{n}" for n in names]]
            atomic_write(files["probabilities"], lambda f: _write_table(f, header, ids, labels, probs), text=True)
        self.reset_cache()
        return files


class EmbeddingWriter(ClassificationSaver):
    """Ignite handler collecting the ``pred`` features of an evaluator run and writing them when the epoch completes.

    Built on ``monai.handlers.ClassificationSaver`` (its event wiring, per-epoch buffers, all-gather across ranks and
    single saving rank) with an :class:`EmbeddingSaver` for the files: ``{prefix}.npy``, ``{prefix}.csv`` and, given
    an existing ``probe_file``, ``probabilities.csv`` in ``output_dir``. Works with decollated (MONAI default) and
    batched outputs; features ``(B, D)`` are taken from ``engine.state.output``, ids and labels from
    ``engine.state.batch``.

    Args:
        output_dir: destination folder (created when writing).
        probe_file: optional probe head file; ignored when missing.
        prefix: file name stem of the embedding files.
        pred_key: output key of the features.
        id_key: batch key of the item identifiers (row numbers when absent).
        label_key: batch key of the labels (empty when absent).
        name: identifier of the ``logging.Logger`` to use (default: the engine's logger).
        save_rank: the rank that writes the files when running distributed.

    Example::

        evaluator = SupervisedEvaluator(..., inferer=EmbeddingInferer(), val_handlers=[EmbeddingWriter("./out")])
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        probe_file: str | os.PathLike | None = None,
        prefix: str = "embeddings",
        pred_key: str = "pred",
        id_key: str = "id",
        label_key: str = "label",
        name: str | None = None,
        save_rank: int = 0,
    ) -> None:
        saver = EmbeddingSaver(output_dir, prefix=prefix, probe_file=probe_file)
        super().__init__(
            output_dir=str(output_dir), filename=f"{prefix}.csv", name=name, save_rank=save_rank, saver=saver
        )
        self.output_dir = saver.output_dir
        self.probe_file, self.prefix = saver.probe_file, prefix
        self.pred_key, self.id_key, self.label_key = pred_key, id_key, label_key
        self._labels: list[str] = []
        self.files: dict[str, Path] = {}

    def _started(self, _engine: Engine) -> None:
        """Clear the buffers at the start of an epoch."""
        super()._started(_engine)
        self._labels = []

    def __call__(self, engine: Engine) -> None:
        """Collect the features, ids and labels of one iteration.

        Args:
            engine: the Ignite engine (an evaluator).
        """
        output, batch = engine.state.output, engine.state.batch
        if isinstance(output, Mapping):  # batched output: pred (B, *)
            pred = torch.as_tensor(output[self.pred_key]).detach().float().cpu()
            feats = pred.reshape(pred.shape[0], -1)
            n = feats.shape[0]
            ids = _rows(batch.get(self.id_key), n) if isinstance(batch, Mapping) else [None] * n
            labels = _rows(batch.get(self.label_key), n) if isinstance(batch, Mapping) else [None] * n
        else:  # decollated: one dict per item
            feats = torch.stack([torch.as_tensor(o[self.pred_key]).detach().float().cpu().reshape(-1) for o in output])
            items = batch if isinstance(batch, Sequence) else [{}] * len(output)
            ids = [b.get(self.id_key) if isinstance(b, Mapping) else None for b in items]
            labels = [b.get(self.label_key) if isinstance(b, Mapping) else None for b in items]
        start = len(self._filenames)
        self._outputs.extend(feats)
        self._filenames += [str(i) if i is not None else str(start + k) for k, i in enumerate(ids)]
        self._labels += [_label_text(v) for v in labels]

    def _finalize(self, _engine: Engine) -> None:
        """Gather the collected items from every rank and write them on ``save_rank``.

        Args:
            _engine: the Ignite engine, unused.
        """
        ws = idist.get_world_size()
        if self.save_rank >= ws:
            raise ValueError("target save rank is greater than the distributed group size.")
        self.files = {}
        if not self._outputs:  # nothing seen (a distributed run gives every rank items, as DistributedSampler does)
            return
        outputs, ids, labels = torch.stack(self._outputs), self._filenames, self._labels
        if ws > 1:
            outputs = evenly_divisible_all_gather(outputs, concat=True)
            ids, labels = string_list_all_gather(ids), string_list_all_gather(labels)
        if idist.get_rank() == self.save_rank:
            self.saver.save_batch(outputs, {"id": ids, "label": labels})
            self.files = self.saver.finalize()
            self.logger.info(f"wrote {len(outputs)} embeddings to '{self.output_dir}'.")
