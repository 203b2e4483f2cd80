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
"""Small helpers that MONAI bundle configs call: where the bundle is, weight export, embedding inference and output.

- :func:`bundle_root_from_config`: the bundle folder, whatever the current directory (MONAI resolves
  ``"bundle_root": "."`` against the current directory, so a bundle run from elsewhere would write beside it).
- :func:`save_network_weights`: the final weights as a plain state dict (``models/model.pt``), rank 0 only.
- :class:`EmbeddingInferer`: a MONAI ``Inferer`` returning pooled encoder features (``network.embed``).
- :class:`ProbeHead` / :func:`fit_probe_head`: a linear probe on frozen features as a small torch module, saved
  beside the weights so that inference can report class probabilities.
- :class:`EmbeddingWriter`: an Ignite handler writing the embeddings (and, given a probe head, class probabilities)
  of an evaluator run to ``.npy`` and ``.csv`` files.
"""

from __future__ import annotations

import ast
import csv
import inspect
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn as nn
from monai.inferers import Inferer
from monai.utils import IgniteInfo, look_up_option, min_version, optional_import

from monai_jepa.engines.checkpoint import unwrap_network
from monai_jepa.utils.dist import get_rank
from monai_jepa.utils.fileio import atomic_torch_save

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = [
    "bundle_root_from_config",
    "save_network_weights",
    "EmbeddingInferer",
    "EmbeddingWriter",
    "ProbeHead",
    "fit_probe_head",
]

logger = logging.getLogger(__name__)


def _root_of(config_file: str | os.PathLike) -> str:
    folder = Path(config_file).resolve().parent
    return str(folder.parent if folder.name == "configs" else folder)


def _config_file_from_argv(argv: Sequence[str]) -> str | None:
    for i, arg in enumerate(argv):
        value = None
        if arg == "--config_file" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--config_file="):
            value = arg.split("=", 1)[1]
        if value is None:
            continue
        value = value.strip()
        if value.startswith(("[", "(")):
            try:
                files = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                files = value.strip("[]()").split(",")
            value = str(files[0]).strip().strip("'\"") if len(files) else None
        return value or None
    return None


def bundle_root_from_config(default: str | os.PathLike | None = None) -> str:
    """The absolute path of the bundle whose configs are being parsed, for ``"bundle_root"`` in a bundle config.

    Resolution order:

        1. a MONAI ``ConfigWorkflow`` on the call stack (``python -m monai.bundle run``, ``ConfigWorkflow(...)``):
           the parent of its config folder when that folder is named ``configs``, else the folder itself;
        2. the first ``--config_file`` on the command line (``monai.bundle ckpt_export``, ``verify_net_in_out``);
        3. ``default``, or the current directory.

    ``--bundle_root /path`` on the command line still overrides the config value.

    Args:
        default: the answer when neither a workflow nor ``--config_file`` is found (default: the current directory).

    Returns:
        the bundle folder as an absolute path string.

    Example::

        "bundle_root": "$monai_jepa.bundle.bundle_root_from_config()"
    """
    from monai.bundle import ConfigWorkflow

    frame = inspect.currentframe()
    try:
        while frame is not None:
            owner = frame.f_locals.get("self")
            if isinstance(owner, ConfigWorkflow) and getattr(owner, "config_root_path", None) is not None:
                return _root_of(Path(owner.config_root_path) / "_")
            frame = frame.f_back
    finally:
        del frame
    config_file = _config_file_from_argv(sys.argv)
    if config_file is not None:
        return _root_of(config_file)
    return str(Path(os.getcwd() if default is None else default).resolve())


def save_network_weights(network: nn.Module, path: str | os.PathLike) -> Path | None:
    """Write ``network``'s state dict (unwrapped from DDP / ``torch.compile``) to ``path`` atomically, on rank 0 only.

    The file loads with ``torch.load(path, weights_only=True)`` into the bare network (``network_def``), as MONAI's
    ``CheckpointLoader``, ``ckpt_export`` and ``load`` expect of ``models/model.pt``.

    Args:
        network: the trained network.
        path: destination file (its folder is created).

    Returns:
        the path written, or None on ranks other than 0.

    Example::

        "run": ["$@train#trainer.run()", "$monai_jepa.bundle.save_network_weights(@network, @model_file)"]
    """
    if get_rank() != 0:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in unwrap_network(network).state_dict().items()}
    atomic_torch_save(state, path)
    logger.info(f"saved the network weights to '{path}'.")
    return path


class EmbeddingInferer(Inferer):
    """MONAI inferer returning pooled encoder features ``(B, D)`` instead of the network's forward output.

    Uses ``network.embed(x)`` (unwrapped from DDP) when the network has it
    (:class:`~monai_jepa.networks.LeJEPAModel`), else ``network(x)`` (a tensor, or the pooled half of a
    ``(tokens, pooled)`` pair).

    Example::

        evaluator = SupervisedEvaluator(device, loader, network, inferer=EmbeddingInferer())
    """

    def __call__(self, inputs: torch.Tensor, network: nn.Module, *args: Any, **kwargs: Any) -> torch.Tensor:
        """
        Args:
            inputs: images ``(B, C, *spatial)``.
            network: the model.

        Returns:
            features ``(B, D)``.
        """
        from monai_jepa.evaluation.features import embed_batch

        return embed_batch(network, inputs)


class ProbeHead(nn.Module):
    """A linear classifier on standardised frozen features, as fitted by a linear probe.

    ``forward(features)`` returns class probabilities: sigmoid for ``"binary"`` (one column, the positive class) and
    ``"multilabel"`` tasks, softmax otherwise.

    Args:
        mean: ``(D,)`` feature mean used for standardisation.
        std: ``(D,)`` feature standard deviation.
        weight: ``(K, D)`` weights (``K = 1`` for binary tasks).
        bias: ``(K,)`` biases.
        task: ``"binary"``, ``"multiclass"``, ``"ordinal"`` or ``"multilabel"``.
        class_names: optional names of the output columns.
    """

    def __init__(
        self,
        mean: torch.Tensor,
        std: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        task: str,
        class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if weight.ndim != 2 or weight.shape[1] != mean.numel() or bias.numel() != weight.shape[0]:
            raise ValueError(
                f"probe shapes disagree: mean {tuple(mean.shape)}, weight {tuple(weight.shape)}, bias "
                f"{tuple(bias.shape)}; expected (D,), (K, D), (K,)."
            )
        self.register_buffer("mean", mean.float().reshape(-1))
        self.register_buffer("std", std.float().reshape(-1))
        self.linear = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(weight.float())
            self.linear.bias.copy_(bias.float().reshape(-1))
        self.task = task
        self.class_names = list(class_names) if class_names is not None else [str(k) for k in range(weight.shape[0])]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """
        Args:
            features: ``(B, D)``.

        Returns:
            probabilities ``(B, K)``.
        """
        logits = self.linear((features.float() - self.mean) / self.std)
        return torch.sigmoid(logits) if self.task in ("binary", "multilabel") else torch.softmax(logits, dim=1)

    def to_file(self, path: str | os.PathLike) -> Path:
        """Save as a plain dict of tensors and strings (loads with ``weights_only=True``); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(
            {
                "mean": self.mean,
                "std": self.std,
                "weight": self.linear.weight.detach(),
                "bias": self.linear.bias.detach(),
                "task": self.task,
                "class_names": self.class_names,
            },
            path,
        )
        return path

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> ProbeHead:
        """Load a head written by :meth:`to_file`."""
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
        return cls(**state)


def fit_probe_head(
    model: nn.Module,
    train_data: Any,
    task: str,
    val_data: Any = None,
    class_names: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 256,
    amp: bool = False,
    max_iter: int = 1000,
    seed: int = 0,
) -> ProbeHead:
    """Fit the linear probe of :func:`monai_jepa.evaluation.linear_probe` on frozen features and return it as a head.

    Features are standardised with the training statistics; the L2 logistic regression's ``C`` is chosen on
    ``val_data`` (validation AUC) when given, else ``C = 1``; the final probe is fitted on ``train_data``.

    Args:
        model: the pretrained network (``model.embed`` gives the features).
        train_data: labelled training data (a dataset of ``{"image", "label"}`` dicts or an ``(images, labels)`` pair).
        task: ``"binary"``, ``"multiclass"``, ``"ordinal"`` or ``"multilabel"``.
        val_data: optional labelled validation data for the choice of ``C``.
        class_names: names of the classes (default ``"0"``, ``"1"``, ...).
        device: device of the feature extraction.
        batch_size: feature-extraction batch size.
        amp: bf16 autocast during feature extraction.
        max_iter: L-BFGS iterations.
        seed: random state of the solver.

    Returns:
        the fitted :class:`ProbeHead` (on the CPU).

    Example::

        head = fit_probe_head(model, train_ds, "binary", val_data=val_ds)
        head.to_file("outputs/models/probe_head.pt")
    """
    from sklearn.linear_model import LogisticRegression

    from monai_jepa.evaluation.features import extract_features
    from monai_jepa.evaluation.metrics import TASKS, labels_to_numpy
    from monai_jepa.evaluation.probes import linear_probe

    task = look_up_option(task, TASKS)
    train_x, train_y = extract_features(model, train_data, device, batch_size, amp)
    if train_y is None:
        raise ValueError("`train_data` carries no labels: a probe head needs labelled training data.")
    x, y = train_x.numpy().astype(np.float64), labels_to_numpy(train_y, task)
    c = 1.0
    if val_data is not None:
        val_x, val_y = extract_features(model, val_data, device, batch_size, amp)
        if val_y is not None:
            c = float(linear_probe(x, y, val_x.numpy(), val_y, task, val_x=val_x.numpy(), val_y=val_y, seed=seed)["C"])
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    xs = (x - mean) / std

    def fit(target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        clf = LogisticRegression(C=c, max_iter=max_iter, random_state=seed).fit(xs, target)
        return clf.coef_, clf.intercept_, clf.classes_

    big = 30.0  # logit of a class that the training labels never (or always) show
    if task == "multilabel":
        weights, biases = [], []
        for k in range(y.shape[1]):
            if y[:, k].min() == y[:, k].max():
                weights.append(np.zeros(x.shape[1]))
                biases.append(big if y[0, k] else -big)
            else:
                w, b, _ = fit(y[:, k])
                weights.append(w[0])
                biases.append(b[0])
        weight, bias = np.stack(weights), np.asarray(biases)
    else:
        w, b, classes = fit(y)
        if task == "binary":
            weight, bias = w, b
        else:
            if len(classes) == 2:  # sklearn returns one logit z for two classes: softmax([-z/2, z/2]) = sigmoid(z)
                w, b = np.concatenate([-w / 2, w / 2]), np.concatenate([-b / 2, b / 2])
            num = max(int(y.max()) + 1, len(class_names or ()), len(classes))
            weight, bias = np.zeros((num, x.shape[1])), np.full(num, -big)
            weight[classes], bias[classes] = w, b
    as_t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    return ProbeHead(as_t(mean), as_t(std), as_t(weight), as_t(bias), task, class_names)


def _rows(value: Any, n: int) -> list[Any]:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return [value[i] for i in range(n)] if value.ndim else [value] * n
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value] * n


class EmbeddingWriter:
    """Ignite handler collecting the ``pred`` features of an evaluator run and writing them when it completes.

    Files in ``output_dir``: ``{prefix}.npy`` (float32 ``(N, D)``), ``{prefix}.csv`` (``id``, ``label``, ``f0`` ...
    ``f{D-1}``) and, when ``probe_file`` exists (a :class:`ProbeHead` file), ``probabilities.csv`` (``id``,
    ``label``, one column per class). Works with decollated (MONAI default) and batched outputs; only rank 0 writes.

    Args:
        output_dir: destination folder (created when writing).
        probe_file: optional probe head file; ignored when missing.
        prefix: file name stem of the embedding files.
        pred_key: output key of the features.
        id_key: batch key of the item identifiers (row numbers when absent).
        label_key: batch key of the labels (empty when absent).

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
    ) -> None:
        self.output_dir = Path(output_dir)
        self.probe_file = None if probe_file is None else Path(probe_file)
        self.prefix = prefix
        self.pred_key, self.id_key, self.label_key = pred_key, id_key, label_key
        self.features: list[torch.Tensor] = []
        self.ids: list[str] = []
        self.labels: list[Any] = []

    def attach(self, engine: Engine) -> None:
        """Register the collection (every iteration) and the writing (at the end of the run)."""
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def _reset(self, _: Engine) -> None:
        self.features, self.ids, self.labels = [], [], []

    def _collect(self, engine: Engine) -> None:
        output, batch = engine.state.output, engine.state.batch
        if isinstance(output, Mapping):  # batched output
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
        start = len(self.ids)
        self.features.append(feats)
        self.ids += [str(i) if i is not None else str(start + k) for k, i in enumerate(ids)]
        self.labels += labels

    @staticmethod
    def _label_text(label: Any) -> str:
        if label is None:
            return ""
        arr = np.asarray(label.cpu() if isinstance(label, torch.Tensor) else label).reshape(-1)
        return " ".join(str(v.item()) for v in arr)

    def write(self, engine: Engine | None = None) -> dict[str, Path]:
        """Write the collected features (rank 0); returns the written files by kind (empty on other ranks)."""
        if get_rank() != 0 or not self.features:
            return {}
        feats = torch.cat(self.features).numpy().astype(np.float32)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        files = {"npy": self.output_dir / f"{self.prefix}.npy", "csv": self.output_dir / f"{self.prefix}.csv"}
        np.save(files["npy"], feats)
        labels = [self._label_text(v) for v in self.labels]
        with open(files["csv"], "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "label", *[f"f{j}" for j in range(feats.shape[1])]])
            for i, lab, row in zip(self.ids, labels, feats):
                writer.writerow([i, lab, *[f"{v:.6g}" for v in row]])
        if self.probe_file is not None and self.probe_file.is_file():
            head = ProbeHead.from_file(self.probe_file)
            with torch.no_grad():
                probs = head(torch.from_numpy(feats)).numpy()
            names = head.class_names if head.task != "binary" else [head.class_names[-1]]
            files["probabilities"] = self.output_dir / "probabilities.csv"
            with open(files["probabilities"], "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["id", "label", *[f"p_{n}" for n in names]])
                for i, lab, row in zip(self.ids, labels, probs):
                    writer.writerow([i, lab, *[f"{v:.6g}" for v in row]])
        logger.info(f"wrote {len(feats)} embeddings to '{self.output_dir}'.")
        return files
