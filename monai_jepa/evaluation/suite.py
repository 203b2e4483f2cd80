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
"""The downstream evaluation suite: frozen probes, few-shot, label-fraction sweeps and fine-tuning of a pretrained
encoder against a random-init and a from-scratch baseline, with reports."""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from monai.utils import look_up_option

from monai_jepa.engines.checkpoint import latest_checkpoint, unwrap_network
from monai_jepa.evaluation.features import data_labels, extract_features, subset_data
from monai_jepa.evaluation.finetune import fine_tune, load_network_state
from monai_jepa.evaluation.metrics import TASKS, labels_to_numpy
from monai_jepa.evaluation.probes import infer_num_classes
from monai_jepa.evaluation.protocols import (
    DEFAULT_LABEL_FRACTIONS,
    DEFAULT_SHOTS,
    PROBES,
    few_shot,
    label_fraction_sweep,
    stratified_subset,
    summarize_runs,
)
from monai_jepa.evaluation.report import format_report, json_safe, run_provenance, write_report
from monai_jepa.utils.fileio import atomic_write_text, load_checkpoint_file

__all__ = ["DEFAULT_PROTOCOLS", "EvaluationSuite", "load_checkpoint_state", "reinit_factory"]

DEFAULT_PROTOCOLS = ("linear", "knn", "few_shot", "label_fraction", "fine_tune", "scratch", "random_init")
_PROBE_PROTOCOLS = ("linear", "knn", "few_shot", "label_fraction")
_NOT_PRIVATE = ("knn", "few_shot", "label_fraction")  # protocols without a DP-SGD counterpart
logger = logging.getLogger(__name__)


def load_checkpoint_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The network weights stored in a checkpoint file, loaded with ``torch.load(weights_only=True)`` on the CPU.

    Args:
        path: a :class:`~monai_jepa.engines.JEPACheckpointer` file (weights under ``"model"``), a plain state dict
            file, or a folder holding a ``checkpoint_latest.txt`` pointer (its newest checkpoint is used).

    Returns:
        the state dict.

    Raises:
        FileNotFoundError: when the file (or the folder's pointer) does not exist.
        ValueError: when the file cannot be read, or holds neither form, naming the file.
    """
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise FileNotFoundError(f"checkpoint folder '{path}' has no 'checkpoint_latest.txt' pointer.")
        path = found
    obj = load_checkpoint_file(path)
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        obj = obj["model"]
    if (
        isinstance(obj, Mapping)
        and obj
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    ):
        return dict(obj)
    found_desc = f"a dict with keys {sorted(map(str, obj))[:8]}" if isinstance(obj, Mapping) else type(obj).__name__
    raise ValueError(
        f"checkpoint file '{path}' holds neither a JEPACheckpointer checkpoint (weights under 'model') nor a plain "
        f"state dict (parameter name -> tensor); found {found_desc}."
    )


def reinit_factory(template: nn.Module) -> Callable[[], nn.Module]:
    """A factory of copies of ``template`` re-initialised by the ``reset_parameters()`` of their layers (PyTorch's
    default initialisation; the draw follows torch's global seed).

    Raises:
        ValueError: when a trainable parameter belongs to a module without ``reset_parameters`` (e.g. a learned
            class token): pass an explicit ``random_init_factory`` for such networks.
    """
    uncovered = [
        f"{mod_name}.{p_name}" if mod_name else p_name
        for mod_name, mod in template.named_modules()
        if not callable(getattr(mod, "reset_parameters", None))
        for p_name, p in mod.named_parameters(recurse=False)
        if p.requires_grad
    ]
    if uncovered:
        raise ValueError(
            f"cannot re-initialise the parameters {uncovered[:5]} of {type(template).__name__} (their modules have "
            "no reset_parameters()); pass random_init_factory, e.g. a function building the network anew."
        )

    def factory() -> nn.Module:
        net = copy.deepcopy(template)
        for mod in net.modules():
            if callable(getattr(mod, "reset_parameters", None)):
                mod.reset_parameters()
        return net

    return factory


class EvaluationSuite:
    """Evaluate a pretrained encoder on a labelled classification dataset, against honest baselines.

    Protocols (any subset of :data:`DEFAULT_PROTOCOLS`):

    - ``"linear"`` / ``"knn"``: frozen-feature probes (:func:`~monai_jepa.evaluation.linear_probe`,
      :func:`~monai_jepa.evaluation.knn_probe`) with all training labels;
    - ``"label_fraction"``: the same probes on stratified ``label_fractions`` of the training labels, over ``seeds``
      (:func:`~monai_jepa.evaluation.label_fraction_sweep`);
    - ``"few_shot"``: ``shots`` labels per class over ``episodes`` episodes (:func:`~monai_jepa.evaluation.few_shot`);
    - ``"fine_tune"``: end-to-end fine-tuning (:func:`~monai_jepa.evaluation.fine_tune`) on ``finetune_fractions``;
    - ``"scratch"``: the same fine-tuning from a random initialisation (same network, budget and subsets);
    - ``"random_init"``: the frozen-probe protocols above on the same architecture at a random initialisation,
      which measures what the architecture alone gives, hence what pretraining adds.

    The probes use the ``"linear"`` / ``"knn"`` probes requested (both when only ``"few_shot"`` /
    ``"label_fraction"`` are). The linear probe chooses its regularisation on the full validation split; the
    fine-tuning keeps the state with the best validation AUC. The random initialisation comes from
    ``random_init_factory`` when given; else from a copy of ``network_def`` taken before the checkpoint is loaded
    (its constructor's own initialisation); else from :func:`reinit_factory` applied to ``model``.

    With ``dp`` (DP-SGD settings, :class:`~monai_jepa.privacy.DPConfig` or its dict; ``pip install
    'monai_jepa[privacy]'``) every training on the labelled data is differentially private: ``"linear"`` becomes
    :func:`~monai_jepa.privacy.dp_linear_probe` on the frozen features (records with protocol ``"dp_linear"``,
    one run per seed, no choice of regularisation on validation data), ``"fine_tune"`` / ``"scratch"`` run
    :func:`~monai_jepa.evaluation.fine_tune` with ``dp`` (protocol ``"dp_fine_tune"``); ``"knn"``, ``"few_shot"``
    and ``"label_fraction"`` have no private counterpart and are refused. The records then carry ``epsilon``,
    ``delta``, ``noise_multiplier``, ``max_grad_norm`` and ``accountant``, and ``report.md`` ends with a privacy
    table.

    Results are written after every stage (atomically) to ``<output_dir>/eval/metrics.json``, ``eval/report.md``
    and ``eval/label_efficiency.png`` (see :func:`~monai_jepa.evaluation.write_report`). Each record holds
    ``dataset``, ``method`` (``method_name``, ``"random_init"`` or ``"scratch"``), ``protocol`` (``"linear"``,
    ``"knn"``, ``"few_shot"``, ``"fine_tune"``), ``probe``, ``label_fraction`` or ``shots``, ``n_labels``,
    ``seeds``, ``acc``, ``auc`` and the task's other metrics (``qwk``; ``macro_auc``, ``per_class_auc``), ``*_std``
    over seeds, ``seconds``, ``feature_seconds`` (frozen protocols), ``pretrain_seconds`` and the provenance
    ``commit``, ``command``, ``machine``, ``date``.

    Args:
        model: the pretrained network (weights loaded), or give ``network_def`` (+ ``checkpoint``).
        train_data: training data: an ``(images, labels)`` pair of tensors / arrays or a dataset of dicts.
        val_data: validation data (same forms), or ``None``.
        test_data: test data (same forms).
        task: ``"binary"``, ``"multiclass"``, ``"ordinal"`` or ``"multilabel"``.
        output_dir: folder of the ``eval/`` outputs.
        dataset_name: name stored in the records.
        protocols: protocols to run.
        label_fractions: fractions of the ``"label_fraction"`` sweep.
        shots: labels per class of the ``"few_shot"`` protocol.
        seeds: seeds of the label subsets of the sweep (one run at fraction 1).
        episodes: few-shot episodes per shot count.
        finetune_fractions: label fractions of ``"fine_tune"`` and ``"scratch"``.
        finetune_minutes: wall-clock budget of each fine-tuning run.
        finetune_epochs: epoch budget of each fine-tuning run (default 20 when neither budget is given).
        device: device of feature extraction and fine-tuning.
        amp: bf16 autocast.
        pretrain_seconds: wall-clock time of the pretraining, stored with the pretrained model's records.
        random_init_factory: builds the network at a random init (see above).
        image_key: image key of dict items.
        label_key: label key of dict items.
        network_def: the network to load ``checkpoint`` into (alternative to ``model``).
        checkpoint: checkpoint file (or folder with a pointer) to load (see :func:`load_checkpoint_state`).
        num_classes: number of classes (default: inferred from the training and test labels).
        batch_size: feature-extraction batch size.
        finetune_seeds: seeds of the fine-tuning runs (default: the first of ``seeds``; one run at fraction 1).
        finetune_kwargs: other arguments of :func:`~monai_jepa.evaluation.fine_tune` (``lr``, ``batch_size``, ...).
        linear_kwargs: other arguments of :func:`~monai_jepa.evaluation.linear_probe`.
        knn_kwargs: other arguments of :func:`~monai_jepa.evaluation.knn_probe`.
        method_name: method name of the pretrained model's records.
        command: command stored in the records (default: the process command line).
        dp: DP-SGD settings (see above), or ``None``.
        dp_linear_kwargs: other arguments of :func:`~monai_jepa.privacy.dp_linear_probe` (``epochs``, ``lr``,
            ``batch_size``, ...).

    Example::

        suite = EvaluationSuite(network_def=build_lejepa_model("resnet18"), checkpoint="models/",
                                train_data=(x_tr, y_tr), val_data=(x_va, y_va), test_data=(x_te, y_te),
                                task="binary", output_dir="runs/pneumonia", dataset_name="pneumoniamnist",
                                finetune_minutes=5)
        records = suite.run()
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        train_data: Any = None,
        val_data: Any = None,
        test_data: Any = None,
        task: str = "binary",
        output_dir: str | os.PathLike = ".",
        dataset_name: str = "dataset",
        protocols: Sequence[str] = DEFAULT_PROTOCOLS,
        label_fractions: Sequence[float] = DEFAULT_LABEL_FRACTIONS,
        shots: Sequence[int] = DEFAULT_SHOTS,
        seeds: Sequence[int] = (0, 1, 2),
        episodes: int = 5,
        finetune_fractions: Sequence[float] = (0.01, 0.1, 1.0),
        finetune_minutes: float | None = None,
        finetune_epochs: int | None = None,
        device: str | torch.device = "cpu",
        amp: bool = False,
        pretrain_seconds: float | None = None,
        random_init_factory: Callable[[], nn.Module] | None = None,
        image_key: str = "image",
        label_key: str = "label",
        network_def: nn.Module | None = None,
        checkpoint: str | os.PathLike | None = None,
        num_classes: int | None = None,
        batch_size: int = 256,
        finetune_seeds: Sequence[int] | None = None,
        finetune_kwargs: Mapping[str, Any] | None = None,
        linear_kwargs: Mapping[str, Any] | None = None,
        knn_kwargs: Mapping[str, Any] | None = None,
        method_name: str = "lejepa",
        command: str | None = None,
        dp: Any = None,
        dp_linear_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if (model is None) == (network_def is None):
            raise ValueError("give exactly one of model and network_def.")
        network = model if model is not None else network_def
        if not isinstance(network, nn.Module):
            raise ValueError(f"model / network_def must be an nn.Module, got {type(network).__name__}.")
        if train_data is None or test_data is None:
            raise ValueError("train_data and test_data are required.")
        self.task = look_up_option(task, TASKS)
        self.protocols = tuple(look_up_option(p, DEFAULT_PROTOCOLS) for p in protocols)
        for f in (*label_fractions, *finetune_fractions):
            if not 0.0 < f <= 1.0:
                raise ValueError(f"label fractions must lie in (0, 1], got {f!r}.")
        if not seeds:
            raise ValueError("seeds must hold at least one seed.")
        if finetune_minutes is None and finetune_epochs is None:
            finetune_epochs = 20
        if dp is not None:
            from monai_jepa.privacy import DPConfig  # optional dependency

            dp = DPConfig.from_value(dp)
            refused = [p for p in self.protocols if p in _NOT_PRIVATE]
            if refused:
                raise ValueError(
                    f"protocols {refused} have no differentially private version; with dp use a subset of "
                    "['linear', 'fine_tune', 'scratch', 'random_init']."
                )
        self.dp = dp
        self.dp_linear_kwargs = dict(dp_linear_kwargs or {})

        if random_init_factory is not None:
            self.random_init_factory = random_init_factory
        elif model is None:  # network_def: its constructor's initialisation, before any checkpoint is loaded
            template = copy.deepcopy(unwrap_network(network))
            self.random_init_factory = lambda: copy.deepcopy(template)
        elif {"fine_tune", "scratch", "random_init"} & set(self.protocols):
            self.random_init_factory = reinit_factory(unwrap_network(network))
        else:
            self.random_init_factory = None
        if checkpoint is not None:
            load_network_state(network, load_checkpoint_state(checkpoint), f"checkpoint '{checkpoint}'")
        self.model = network
        self.checkpoint = checkpoint
        self.train_data, self.val_data, self.test_data = train_data, val_data, test_data
        self.output_dir = Path(output_dir)
        self.dataset_name = dataset_name
        self.label_fractions = tuple(float(f) for f in label_fractions)
        self.shots = tuple(int(s) for s in shots)
        self.seeds = tuple(int(s) for s in seeds)
        self.episodes = int(episodes)
        self.finetune_fractions = tuple(float(f) for f in finetune_fractions)
        self.finetune_minutes = finetune_minutes
        self.finetune_epochs = finetune_epochs
        self.finetune_seeds = tuple(finetune_seeds) if finetune_seeds else self.seeds[:1]
        self.finetune_kwargs = dict(finetune_kwargs or {})
        self.linear_kwargs = dict(linear_kwargs or {})
        self.knn_kwargs = dict(knn_kwargs or {})
        self.device = device
        self.amp = amp
        self.pretrain_seconds = pretrain_seconds
        self.image_key, self.label_key = image_key, label_key
        self.batch_size = batch_size
        self.method_name = method_name
        self.command = command
        self.num_classes = num_classes
        self.records: list[dict[str, Any]] = []
        self._provenance: dict[str, Any] = {}

    # ------------------------------------------------------------------ running
    def run(self) -> list[dict[str, Any]]:
        """Run the protocols, writing the outputs after each stage.

        Returns:
            the records (also in ``<output_dir>/eval/metrics.json``).
        """
        self.records = []
        self._provenance = run_provenance(self.command, self.device)
        probe_protocols = [p for p in _PROBE_PROTOCOLS if p in self.protocols]
        if probe_protocols:
            self._add(self._probe_records(self.model), self.method_name)
            if "random_init" in self.protocols:
                self._add(self._probe_records(self._random_network(self.seeds[0])), "random_init")
        elif "random_init" in self.protocols:
            logger.warning("'random_init' runs the frozen-probe protocols, and none of them was requested.")
        if "fine_tune" in self.protocols:
            state = {k: v.detach().cpu().clone() for k, v in unwrap_network(self.model).state_dict().items()}
            self._add(self._finetune_records(state), self.method_name)
        if "scratch" in self.protocols:
            self._add(self._finetune_records(None), "scratch")
        if not self.records:
            self._write()
        return self.records

    def _add(self, records: list[dict[str, Any]], method: str) -> None:
        pretrain = self.pretrain_seconds if method == self.method_name else 0.0
        for r in records:
            self.records.append(
                {"dataset": self.dataset_name, "method": method, **r, "pretrain_seconds": pretrain, **self._provenance}
            )
        self._write()

    def _write(self) -> None:
        title = f"Evaluation: {self.dataset_name}"
        paths = write_report(self.records, self.output_dir, title)
        if self.dp is not None:
            from monai_jepa.privacy import format_privacy_report

            text = format_report(json_safe(self.records), title) + format_privacy_report(json_safe(self.records))
            atomic_write_text(paths["report"], text)

    def _random_network(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return self.random_init_factory()  # type: ignore[misc]

    def _features(self, network: nn.Module, data: Any) -> tuple[torch.Tensor, Any]:
        feats, labels = extract_features(
            network, data, self.device, self.batch_size, self.amp, self.image_key, self.label_key
        )
        if labels is None:
            raise ValueError(f"the evaluation data carry no labels (label key '{self.label_key}').")
        return feats, labels

    def _probe_records(self, network: nn.Module) -> list[dict[str, Any]]:
        start = time.perf_counter()
        train_x, train_y = self._features(network, self.train_data)
        test_x, test_y = self._features(network, self.test_data)
        if self.dp is not None:
            return [
                {**r, "feature_seconds": time.perf_counter() - start}
                for r in self._dp_probe(train_x, train_y, test_x, test_y)
            ]
        val_x, val_y = self._features(network, self.val_data) if self.val_data is not None else (None, None)
        feature_seconds = time.perf_counter() - start
        probes = [p for p in PROBES if p in self.protocols] or list(PROBES)
        common = dict(
            task=self.task,
            probes=probes,
            num_classes=self.num_classes,
            linear_kwargs=self.linear_kwargs,
            knn_kwargs=self.knn_kwargs,
        )
        records: list[dict[str, Any]] = []
        if {"linear", "knn", "label_fraction"} & set(self.protocols):
            fractions = self.label_fractions if "label_fraction" in self.protocols else (1.0,)
            records += label_fraction_sweep(
                train_x,
                train_y,
                test_x,
                test_y,
                fractions=fractions,
                seeds=self.seeds,
                val_x=val_x,
                val_y=val_y,
                **common,
            )
        if "few_shot" in self.protocols:
            records += few_shot(
                train_x, train_y, test_x, test_y, shots=self.shots, episodes=self.episodes, seed=self.seeds[0], **common
            )
        return [{**r, "feature_seconds": feature_seconds} for r in records]

    def _dp_probe(self, train_x: torch.Tensor, train_y: Any, test_x: torch.Tensor, test_y: Any) -> list[dict[str, Any]]:
        from monai_jepa.privacy import dp_linear_probe

        kwargs = {"num_classes": self.num_classes, **self.dp_linear_kwargs}
        runs = [
            dp_linear_probe(train_x, train_y, test_x, test_y, self.task, self.dp, seed=seed, **kwargs)
            for seed in self.seeds
        ]
        summary = summarize_runs(runs)
        return [
            {
                "protocol": "dp_linear",
                "probe": "linear",
                "label_fraction": 1.0,
                "shots": None,
                "seeds": list(self.seeds),
                **summary,
            }
        ]

    def _finetune_records(self, pretrained_state: Mapping[str, torch.Tensor] | None) -> list[dict[str, Any]]:
        train_labels = labels_to_numpy(data_labels(self.train_data, self.label_key), self.task)
        num_classes = self.num_classes or infer_num_classes(
            self.task, train_labels, labels_to_numpy(data_labels(self.test_data, self.label_key), self.task)
        )
        records = []
        for fraction in self.finetune_fractions:
            seeds = list(self.finetune_seeds) if fraction < 1.0 else list(self.finetune_seeds[:1])
            runs = []
            for seed in seeds:
                subset = subset_data(self.train_data, stratified_subset(train_labels, fraction=fraction, seed=seed))
                runs.append(
                    fine_tune(
                        self.random_init_factory,  # type: ignore[arg-type]
                        subset,
                        self.val_data,
                        self.test_data,
                        self.task,
                        pretrained_state=pretrained_state,
                        num_classes=num_classes,
                        max_epochs=self.finetune_epochs,
                        max_minutes=self.finetune_minutes,
                        device=self.device,
                        amp=self.amp,
                        seed=seed,
                        image_key=self.image_key,
                        label_key=self.label_key,
                        **self.finetune_kwargs,
                        **({} if self.dp is None else {"dp": self.dp}),
                    )
                )
            summary = summarize_runs(runs)
            records.append(
                {
                    "protocol": "fine_tune" if self.dp is None else "dp_fine_tune",
                    "probe": None,
                    "label_fraction": fraction,
                    "shots": None,
                    "seeds": seeds,
                    **summary,
                }
            )
        return records
