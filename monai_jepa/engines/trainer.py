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
"""LeJEPA pretraining engine: a MONAI ``SupervisedTrainer`` whose iteration encodes multi-view batches."""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from monai.data import MetaTensor
from monai.data.utils import set_rnd
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents, default_metric_cmp_fn
from monai.inferers import Inferer
from monai.utils import IgniteInfo, look_up_option, min_version, optional_import
from monai.utils.misc import MAX_SEED
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader

from monai_jepa.engines.autotune import AUTO, choose_step_settings, settings_label, step_candidates
from monai_jepa.engines.rng import capture_rng_state, derive_seed, restore_rng_state, seed_global_rngs
from monai_jepa.utils.dist import broadcast_int, get_rank
from monai_jepa.utils.embedding import effective_rank, embedding_std

if TYPE_CHECKING:
    from ignite.engine import Engine, EventEnum, Events
    from ignite.metrics import Metric
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
    EventEnum, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "EventEnum")
    Metric, _ = optional_import("ignite.metrics", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Metric")

__all__ = ["LeJEPATrainer", "NonFiniteGradientError", "NonFiniteLossError", "OUTPUT_KEYS", "plain_tensor"]

OUTPUT_KEYS = ("loss", "pred", "sigreg", "lr", "embedding_std", "effective_rank")
"""The scalar entries of ``LeJEPATrainer``'s ``engine.state.output``."""

_AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


class NonFiniteLossError(FloatingPointError):
    """Raised when the loss is NaN or infinite; training stops before the optimizer step.

    Args:
        iteration: the (1-based, global) iteration at which the loss was non-finite.
        epoch: the current epoch.
        terms: the loss terms of that iteration (``loss``, ``pred``, ``sigreg``).
    """

    def __init__(self, iteration: int, epoch: int, terms: Mapping[str, float]) -> None:
        self.iteration = iteration
        self.epoch = epoch
        self.terms = dict(terms)
        values = ", ".join(f"{k}={v:.6g}" for k, v in self.terms.items())
        super().__init__(
            f"non-finite loss at iteration {iteration} (epoch {epoch}): {values}. Training stopped before the "
            "optimizer step and no checkpoint was written after it. Check the input batch for NaN/Inf values, lower "
            "the learning rate, or train in bfloat16 rather than float16."
        )


class NonFiniteGradientError(FloatingPointError):
    """Raised when a gradient is NaN or infinite although the loss is finite; training stops before the step.

    Args:
        iteration: the (1-based, global) iteration.
        epoch: the current epoch.
        names: the parameters with non-finite gradients.
    """

    def __init__(self, iteration: int, epoch: int, names: Sequence[str]) -> None:
        self.iteration, self.epoch, self.names = iteration, epoch, list(names)
        shown = ", ".join(self.names[:5]) + (f" and {len(self.names) - 5} more" if len(self.names) > 5 else "")
        super().__init__(
            f"non-finite gradient at iteration {iteration} (epoch {epoch}) with a finite loss, in {shown}. Training "
            "stopped before the optimizer step. Under bfloat16 autocast on the CPU, oneDNN's 3D convolution weight "
            "gradient is known to overflow when a feature map has exactly 2 voxels along an axis (torch 2.13): "
            "change the input size (e.g. the clip length) or train with amp=False."
        )


class _ResumableData:
    """Iterable over ``trainer.data_loader`` that skips the batches an interrupted epoch already consumed.

    Ignite restarts the data iterator of a resumed epoch from its first batch; this wrapper drops the
    ``trainer._skip_batches`` batches already seen (by fetching them, so that data-side random transforms replay
    exactly) and then restores the RNG snapshot taken when the run was interrupted.
    """

    def __init__(self, trainer: LeJEPATrainer) -> None:
        self.trainer = trainer

    def __len__(self) -> int:
        return len(self.trainer.data_loader)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator:
        trainer = self.trainer
        iterator = iter(trainer.data_loader)
        skip, trainer._skip_batches = trainer._skip_batches, 0
        if skip > 0:
            trainer.logger.info(f"Resuming mid-epoch: skipping the {skip} batches already used in this epoch.")
            for _ in range(skip):
                next(iterator)
        pending, trainer._pending_rng = trainer._pending_rng, None
        if pending is not None:
            restore_rng_state(*pending)
        return iterator


def plain_tensor(x: Any) -> torch.Tensor:
    """``x`` as a plain ``torch.Tensor``: MONAI ``MetaTensor`` batches lose their metadata (their per-operation
    metadata tracking slows every network call down several-fold, and training needs none of it)."""
    return x.as_tensor() if isinstance(x, MetaTensor) else torch.as_tensor(x)


class LeJEPATrainer(SupervisedTrainer):
    """LeJEPA pretraining trainer, configured like MONAI's ``SupervisedTrainer`` (bundle configs, handlers, DDP).

    One iteration: take the views of the batch, encode the ``G`` global views in one pass (flattened to
    ``(G * B, C, *gs)``) and the ``L`` local views in a second pass (so BatchNorm keeps statistics per view size),
    reshape the projections to ``(G, B, D)`` / ``(L, B, D)``, evaluate ``loss_function.compute_terms`` in float32,
    back-propagate and step the optimizer (every ``accumulation_steps`` iterations).

    The views come either from the batch (``batch[global_key]`` (G, B, C, *gs) and ``batch[local_key]``
    (L, B, C, *ls), e.g. from :func:`monai_jepa.transforms.multiview_collate`), or from ``views_fn`` applied on the
    training device to ``batch[image_key]`` (B, C, *S) (e.g. :class:`monai_jepa.transforms.BatchMultiView`).

    ``engine.state.output`` is a dict of Python floats with the keys of ``OUTPUT_KEYS``: ``loss``, ``pred``,
    ``sigreg`` (the loss terms; ``nan`` for a term the loss does not report), ``lr`` (first parameter group),
    ``embedding_std`` and ``effective_rank`` (of the first global view's projections, see
    :mod:`monai_jepa.utils.embedding`, refreshed every ``health_interval`` iterations). Log them with
    ``StatsHandler(output_transform=lambda x: x)`` or :func:`monai_jepa.engines.attach_tensorboard`.
    Note that ``"pred"`` is the prediction loss ``L_pred``, not a network prediction.

    Reproducibility and resuming (see :class:`monai_jepa.engines.JEPACheckpointer`): at the start of every epoch the
    global RNGs (torch, CUDA, numpy, ``random``), the data loader's ``generator``, the ``generator`` of ``views_fn``
    and, with ``num_workers == 0``, the random transforms of the loader's dataset are reseeded from
    ``(seed, epoch, rank)``, so the data order and the augmentation of an epoch do not depend on what ran before it.
    When a run resumes in the middle of an epoch, the batches that epoch already used are fetched again and dropped
    (Ignite alone would restart the epoch from its first batch), then the RNG states saved at the interruption are
    restored, so the resumed run reproduces the uninterrupted one step for step. Rules:

        - ``num_workers=0``: exact when the dataset draws from the global RNGs or uses MONAI random transforms.
        - ``num_workers > 0``: exact when every worker's randomness derives from its worker seed (torch seeds
          ``torch``, ``random`` and numpy in each worker; ``monai.data.DataLoader`` also reseeds MONAI random
          transforms) and ``persistent_workers=False`` (persistent workers carry their RNG streams across epochs).
        - always: ``epoch_length == len(train_data_loader)`` (the default) and the same configuration (data, batch
          size, handlers).
        - distributed runs: exact at epoch boundaries; mid-epoch only rank 0 restores its RNG states.

    Re-fetching the used batches costs their loading time once per resume (no forward pass).

    Start-up probe (``amp="auto"`` and / or ``channels_last="auto"``): whether bf16 autocast and the
    ``channels_last`` layout speed a step up depends on the hardware (on a CPU without bf16 matrix units, bf16 with
    ``channels_last`` ran a 2D ResNet encoder 1.9x slower than bf16 in NCHW; on another CPU ``channels_last`` helped).
    At the first iteration of a run, before its step, the trainer times its own iteration on that first batch under
    each candidate setting (:func:`~monai_jepa.engines.autotune.step_candidates`: fp32 and bf16 on the CPU, fp32, bf16
    and fp16 on CUDA, times contiguous and ``channels_last``; an explicit True / False keeps that argument fixed) with
    :func:`~monai_jepa.engines.autotune.choose_step_settings`: per setting ``warmup`` untimed and ``repeats`` timed
    forward + backward passes, no optimizer step and no iteration events. The weights and buffers of the network and
    the loss (BatchNorm statistics, SIGReg's step counter), the gradients and the RNG states are restored afterwards,
    so the run is the run it would have been with the chosen settings given explicitly. The fastest setting is kept for
    the whole run, logged in one line with every timing, and recorded in ``engine.state.step_settings`` (a dict with
    ``amp``, ``amp_dtype``, ``channels_last``, ``label``, ``seconds``, ``source="probe"``; with explicit settings the
    same keys less the timings and ``source="given"``). The probe costs ``(warmup + repeats) x candidates`` steps
    (16 with the defaults on the CPU), at the first ``run()`` of the trainer only, and counts towards
    ``time_limit_minutes``. It needs the built-in iteration (not ``iteration_update``). Distributed runs take rank 0's
    choice on every rank.

    Why not the stock Ignite / MONAI parts (each shown by a test in ``tests/engines/test_trainer.py``): Ignite's
    ``TerminateOnNan`` acts on ``ITERATION_COMPLETED``, after the optimizer has stepped on the non-finite loss (the
    weights are already NaN), whereas this trainer raises :class:`NonFiniteLossError` before the step, so the last
    checkpoint and the weights in memory stay good; Ignite's ``TimeLimit`` takes whole seconds only and times from
    its construction, whereas ``time_limit_minutes`` takes any positive duration and times each ``run()`` from its
    start. Checkpoints are :class:`~monai_jepa.engines.JEPACheckpointer`'s (exact mid-epoch resume, atomic writes)
    and the schedule :func:`~monai_jepa.engines.warmup_cosine` (a cosine that can follow a wall-clock budget); their
    docstrings say why.

    Args:
        device: the training device.
        max_epochs: number of epochs to train.
        train_data_loader: iterable of batches (usually a ``torch.utils.data.DataLoader``).
        network: maps images (N, C, *spatial) to projections (N, D).
        optimizer: optimizer over ``network``'s parameters.
        loss_function: :class:`monai_jepa.losses.LeJEPALoss` or any module with
            ``compute_terms(global (G, B, D), local (L, B, D) | None) -> {"loss", ...}``; a plain callable
            ``loss(global, local) -> Tensor | dict`` also works.
        epoch_length: iterations per epoch, default ``len(train_data_loader)``.
        non_blocking: non-blocking host-to-device copies.
        iteration_update: replaces :meth:`_iteration` when given (as in MONAI).
        inferer: how the network is applied to a flattened view batch, default ``SimpleInferer()``.
        key_train_metric: Ignite metric(s) computed on the output, as in MONAI.
        additional_metrics: more Ignite metrics.
        metric_cmp_fn: comparison of key metric values.
        train_handlers: handlers with ``attach(engine)`` (StatsHandler, LrScheduleHandler, JEPACheckpointer, ...).
        amp: automatic mixed precision (autocast, ``amp_dtype``) for the forward passes, default True; the loss is
            always computed in float32. bf16 autocast doubled the W1 throughput on a CPU with bf16 matmul units
            (``benchmarks/results/pretrain_throughput_w1_cpu.md``); set False on CPUs without them, or ``"auto"`` to
            let the start-up probe choose (see "Start-up probe" above).
        event_names: extra Ignite events to register.
        event_to_attr: mapping event -> state attribute, as in MONAI.
        decollate: decollate batch and output after each iteration (default False: the output holds scalars only).
        optim_set_to_none: ``optimizer.zero_grad(set_to_none=...)``.
        to_kwargs: extra arguments of ``Tensor.to`` for the input views.
        amp_kwargs: extra arguments of ``torch.autocast`` (``dtype`` overrides ``amp_dtype``).
        compile: ``torch.compile`` the network.
        compile_kwargs: arguments of ``torch.compile``.
        accumulation_steps: the optimizer steps every ``accumulation_steps`` iterations (and at the end of each
            epoch), with the loss divided by ``accumulation_steps``: for losses that are means over samples this
            equals one step on an ``accumulation_steps`` times larger batch. SIGReg is a statistic of the whole
            batch, so for LeJEPA it is an approximation (each micro-batch is tested on its own). The reported
            ``loss`` is unscaled. Schedulers stepped per iteration count iterations, not optimizer steps.
        amp_dtype: ``"bfloat16"`` (default; no loss scaling needed) or ``"float16"`` (with a ``GradScaler`` on CUDA).
        views_fn: optional ``views_fn(images (B, C, *S)) -> (global (G, B, C, *gs), local (L, B, C, *ls) | None)``
            applied on the training device to ``batch[image_key]``. Its ``generator`` (when it has one) is part of
            the RNG state the checkpointer saves.
        global_key: batch key of the global views when ``views_fn`` is None.
        local_key: batch key of the local views when ``views_fn`` is None (optional in the batch).
        image_key: batch key of the images given to ``views_fn``.
        time_limit_minutes: optional wall-clock limit per ``run()``: when exceeded, training terminates cleanly after
            the current iteration (a ``JEPACheckpointer`` then writes its final checkpoint).
        channels_last: put the network and 4D / 5D inputs in ``channels_last`` / ``channels_last_3d`` memory format
            (default True: faster convolutions on most CPUs and GPUs), or ``"auto"`` to let the start-up probe choose.
        health_interval: compute ``embedding_std`` and ``effective_rank`` every this many iterations.
        seed: base seed of the per-epoch reseeding; ``None`` draws one from torch's global generator (so
            ``monai.utils.set_determinism`` fixes it). Saved in checkpoints and restored on resume.
        reseed_every_epoch: reseed the RNGs at the start of each epoch as described above (default True).
        autotune_kwargs: options of the start-up probe (used only with ``"auto"``): ``warmup`` (untimed steps per
            setting, default 1), ``repeats`` (timed steps per setting, default 3), ``candidates`` (the settings to
            try, default from :func:`~monai_jepa.engines.autotune.step_candidates`) and ``timer`` (the clock).

    Example::

        opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.05)
        trainer = LeJEPATrainer(
            device=torch.device("cuda"), max_epochs=100, train_data_loader=loader, network=model, optimizer=opt,
            loss_function=LeJEPALoss(lamb=0.05), views_fn=BatchMultiView(seed=0), amp=True,
            train_handlers=[
                LrScheduleHandler(warmup_cosine(opt, 500, 100 * len(loader)), print_lr=False, epoch_level=False),
                StatsHandler(output_transform=jepa_scalars, iteration_log=50),
                JEPACheckpointer("./models", save_interval=1000, resume_from="auto"),
            ],
        )
        trainer.run()
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Iterable | DataLoader,
        network: torch.nn.Module,
        optimizer: Optimizer,
        loss_function: Callable,
        epoch_length: int | None = None,
        non_blocking: bool = False,
        iteration_update: Callable[[Engine, Any], Any] | None = None,
        inferer: Inferer | None = None,
        key_train_metric: dict[str, Metric] | None = None,
        additional_metrics: dict[str, Metric] | None = None,
        metric_cmp_fn: Callable = default_metric_cmp_fn,
        train_handlers: Sequence | None = None,
        amp: bool | str = True,
        event_names: list[str | EventEnum | type[EventEnum]] | None = None,
        event_to_attr: dict | None = None,
        decollate: bool = False,
        optim_set_to_none: bool = False,
        to_kwargs: dict | None = None,
        amp_kwargs: dict | None = None,
        compile: bool = False,
        compile_kwargs: dict | None = None,
        accumulation_steps: int = 1,
        amp_dtype: str = "bfloat16",
        views_fn: Callable | None = None,
        global_key: str = "image_global",
        local_key: str = "image_local",
        image_key: str = "image",
        time_limit_minutes: float | None = None,
        channels_last: bool | str = True,
        health_interval: int = 10,
        seed: int | None = None,
        reseed_every_epoch: bool = True,
        autotune_kwargs: dict | None = None,
    ) -> None:
        if not isinstance(accumulation_steps, int) or accumulation_steps < 1:
            raise ValueError(f"accumulation_steps must be a positive integer, got {accumulation_steps!r}.")
        if not isinstance(health_interval, int) or health_interval < 1:
            raise ValueError(f"health_interval must be a positive integer, got {health_interval!r}.")
        if time_limit_minutes is not None and not time_limit_minutes > 0:
            raise ValueError(f"time_limit_minutes must be None or > 0, got {time_limit_minutes!r}.")
        if views_fn is not None and not callable(views_fn):
            raise ValueError(f"views_fn must be callable or None, got {type(views_fn).__name__}.")
        amp_dtype_ = _AMP_DTYPES[look_up_option(amp_dtype, tuple(_AMP_DTYPES))]
        probe = isinstance(amp, str) or isinstance(channels_last, str)
        candidates = step_candidates(device, amp, channels_last, amp_dtype) if probe else None  # validates "auto"
        if probe and iteration_update is not None:
            raise ValueError(
                "amp / channels_last='auto' probe the built-in iteration: not available with iteration_update."
            )
        autotune_kwargs = dict(autotune_kwargs or {})
        unknown = set(autotune_kwargs) - {"candidates", "warmup", "repeats", "timer"}
        if unknown:
            raise ValueError(f"autotune_kwargs accepts candidates, warmup, repeats and timer, got {sorted(unknown)}.")
        # accumulation_steps is handled here (MONAI < 1.6 has no such argument)
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            train_data_loader=train_data_loader,
            network=network,
            optimizer=optimizer,
            loss_function=loss_function,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            iteration_update=iteration_update,
            inferer=inferer,
            key_train_metric=key_train_metric,
            additional_metrics=additional_metrics,
            metric_cmp_fn=metric_cmp_fn,
            train_handlers=train_handlers,
            amp=False if amp == AUTO else amp,  # fixed by the start-up probe
            event_names=event_names,
            event_to_attr=event_to_attr,
            decollate=decollate,
            optim_set_to_none=optim_set_to_none,
            to_kwargs=to_kwargs,
            amp_kwargs=amp_kwargs,
            **({"compile": True, "compile_kwargs": compile_kwargs} if compile else {}),
        )
        self.accumulation_steps = accumulation_steps
        self.amp_dtype = amp_dtype_
        self.views_fn = views_fn
        self.global_key, self.local_key, self.image_key = global_key, local_key, image_key
        self.time_limit_minutes = time_limit_minutes
        self.channels_last = False if channels_last == AUTO else channels_last
        self._probe_candidates = autotune_kwargs.pop("candidates", candidates) if probe else None
        self._autotune_kwargs = autotune_kwargs
        self._probing = False
        self.state.step_settings = {
            "amp": bool(self.amp),
            "amp_dtype": amp_dtype if self.amp else None,
            "channels_last": bool(self.channels_last),
            "label": settings_label({"amp": self.amp, "amp_dtype": amp_dtype, "channels_last": self.channels_last}),
            "source": "probe pending" if probe else "given",
        }
        self.health_interval = health_interval
        self.reseed_every_epoch = reseed_every_epoch
        self.state.seed = int(torch.randint(0, 2**31 - 1, (1,)).item()) if seed is None else int(seed)
        for key in ("seed", "health"):
            if key not in self.state_dict_user_keys:
                self.state_dict_user_keys.append(key)
        self._data = _ResumableData(self)
        self._skip_batches = 0
        self._pending_rng: tuple[Mapping[str, Any], Sequence[Any]] | None = None
        self.state.health = None  # (embedding_std, effective_rank) of the last health check, checkpointed
        self._memory_format_set = False
        self._run_start = time.monotonic()
        self.add_event_handler(Events.STARTED, self._on_started)
        self.add_event_handler(Events.EPOCH_STARTED, self._on_epoch_started)
        self.add_event_handler(Events.ITERATION_COMPLETED, self._check_time_limit)
        self.add_event_handler(Events.TERMINATE, self._on_terminate)
        if probe:
            self.add_event_handler(Events.ITERATION_STARTED, self._on_iteration_started)

    # ------------------------------------------------------------------ RNG and resuming
    @property
    def rng_generators(self) -> list[Any]:
        """Seedable objects owned by the pipeline whose state belongs in a checkpoint (``views_fn``'s generator)."""
        gen = getattr(self.views_fn, "generator", None)
        return [gen] if isinstance(gen, torch.Generator) else []

    def resume_rng_state(self, state: Mapping[str, Any], generators: Sequence[Any] = ()) -> None:
        """Restore an RNG snapshot at the right moment of a resumed run.

        At an epoch boundary the snapshot is restored at once (the next epoch start reseeds the global RNGs anyway);
        in the middle of an epoch it is restored after the batches already used have been skipped, because fetching
        them consumes random numbers.

        Args:
            state: snapshot from :func:`monai_jepa.engines.capture_rng_state`.
            generators: the objects whose states the snapshot holds, in order.
        """
        el = self.state.epoch_length
        if el and self.state.iteration % el:
            self._pending_rng = (state, list(generators))
        else:
            restore_rng_state(state, generators)

    def load_state_dict(self, state_dict: Mapping) -> None:
        """Restore the progress saved by :meth:`state_dict` (``iteration``, ``epoch_length``, ``seed`` and the last
        embedding-health values, so that a resumed run reports what the uninterrupted run would).

        ``max_epochs`` keeps its current value, so a resumed run may be given more epochs than the original.

        Raises:
            ValueError: when the saved ``epoch_length`` differs from the current one (the data changed).
        """
        el = self.state.epoch_length
        saved_el = state_dict.get("epoch_length")
        if el is not None and saved_el is not None and int(saved_el) != int(el):
            raise ValueError(
                f"the checkpoint was written with epoch_length={saved_el} but the trainer has epoch_length={el}; "
                "resuming needs the same data loader length."
            )
        self.state.epoch_length = el if el is not None else saved_el
        self.state.iteration = int(state_dict["iteration"])
        self.state.epoch = self.state.iteration // self.state.epoch_length if self.state.epoch_length else 0
        if "seed" in state_dict:
            self.state.seed = int(state_dict["seed"])
        health = state_dict.get("health")
        self.state.health = None if health is None else (float(health[0]), float(health[1]))

    def _on_started(self, _: Engine) -> None:
        self._run_start = time.monotonic()

    def _on_epoch_started(self, _: Engine) -> None:
        el = self.state.epoch_length
        self._skip_batches = max(0, self.state.iteration - (self.state.epoch - 1) * el) if el else 0
        if not self.reseed_every_epoch:
            return
        epoch_seed = derive_seed(self.state.seed, self.state.epoch, get_rank())
        seed_global_rngs(epoch_seed)
        loader = self.data_loader
        if isinstance(loader, DataLoader):
            gens = {id(g): g for g in (loader.generator, getattr(loader.sampler, "generator", None))}
            for g in gens.values():
                if isinstance(g, torch.Generator):
                    g.manual_seed(derive_seed(epoch_seed, 1))
            if loader.num_workers == 0:
                set_rnd(loader.dataset, seed=derive_seed(epoch_seed, 2) % MAX_SEED)
        for g in self.rng_generators:
            g.manual_seed(derive_seed(epoch_seed, 3))

    def _on_terminate(self, _: Engine) -> None:
        el = self.state.epoch_length
        if el and self.state.iteration % el:  # keep the RNG state for a later run() of this same object
            generators = self.rng_generators
            self._pending_rng = (capture_rng_state(generators), generators)

    def _check_time_limit(self, _: Engine) -> None:
        if self.time_limit_minutes is None:
            return
        elapsed = (time.monotonic() - self._run_start) / 60.0
        if elapsed >= self.time_limit_minutes:
            self.logger.info(
                f"Time limit of {self.time_limit_minutes} min reached after {elapsed:.2f} min at iteration "
                f"{self.state.iteration}: terminating."
            )
            self.terminate()

    # ------------------------------------------------------------------ start-up probe of amp / channels_last
    def _probe_modules(self) -> list[torch.nn.Module]:
        """The modules whose state (weights, BatchNorm statistics, SIGReg's step counter...) the probe restores and
        whose memory format follows ``channels_last``."""
        modules = [self.network]
        if isinstance(self.loss_function, torch.nn.Module):
            modules.append(self.loss_function)
        return modules

    def _apply_step_settings(self, settings: Mapping[str, Any]) -> None:
        self.amp = bool(settings["amp"])
        if self.amp:
            self.amp_dtype = _AMP_DTYPES[settings["amp_dtype"]]
        self.channels_last = bool(settings["channels_last"])
        for module in self._probe_modules():
            module.to(memory_format=torch.contiguous_format)
        self._memory_format_set = False  # the first pass converts the network when channels_last

    def _make_scaler(self) -> torch.amp.GradScaler | None:
        use_scaler = self.amp and self.amp_dtype == torch.float16 and self.state.device.type == "cuda"
        return torch.amp.GradScaler("cuda") if use_scaler else None

    def _on_iteration_started(self, _: Engine) -> None:
        if self._probe_candidates is not None:
            candidates, self._probe_candidates = self._probe_candidates, None
            self._probe_step_settings(self.state.batch, candidates)

    def _probe_step_settings(self, batch: Any, candidates: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Choose ``amp`` / ``channels_last`` by timing this trainer's iteration on ``batch`` under each candidate.

        The probe steps run the real iteration (views or masks, encoding, loss) with forward + backward only: no
        optimizer step, no iteration events, no output. The states of :meth:`_probe_modules` (weights and buffers),
        the gradients and the RNG states (global and :attr:`rng_generators`) are snapshotted first and restored
        afterwards, so the run continues exactly as if it had been started with the chosen settings. In a distributed
        run every rank adopts rank 0's choice.

        Returns:
            ``engine.state.step_settings``: the result of :func:`~monai_jepa.engines.autotune.choose_step_settings`
            with ``"source": "probe"``.
        """
        modules = self._probe_modules()
        states = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in modules]
        params = {id(p): p for m in modules for p in m.parameters()}
        params.update({id(p): p for group in self.optimizer.param_groups for p in group["params"]})
        grads = [(p, None if p.grad is None else p.grad.detach().clone()) for p in params.values()]
        generators = self.rng_generators
        rng = capture_rng_state(generators)
        health, output = self.state.health, self.state.output

        def step(settings: Mapping[str, Any]) -> None:
            self._apply_step_settings(settings)
            self._probing = True
            try:
                self._iteration(self, batch)
            finally:
                self._probing = False

        sync = torch.cuda.synchronize if self.state.device.type == "cuda" else None
        kwargs = {"warmup": 1, "repeats": 3, **self._autotune_kwargs}
        candidates = [dict(c) for c in candidates]
        labels = [settings_label(c) for c in candidates]
        result: dict[str, Any] | None = None
        try:
            result = choose_step_settings(step, candidates, logger=self.logger, sync=sync, **kwargs)
            index = broadcast_int([labels.index(result["label"])])[0]  # every rank takes rank 0's choice
            if labels[index] != result["label"]:
                self.logger.info(f"rank {get_rank()} uses rank 0's step settings {labels[index]}.")
                result.update({k: candidates[index][k] for k in ("amp", "amp_dtype", "channels_last")})
                result["label"] = labels[index]
        finally:
            self._apply_step_settings(result if result is not None else self.state.step_settings)
            for module, state in zip(modules, states):
                module.load_state_dict(state)
            for p, g in grads:
                p.grad = g
            restore_rng_state(rng, generators)
            self.state.health, self.state.output = health, output
        self.scaler = self._make_scaler()
        result["source"] = "probe"
        self.state.step_settings = result
        return result

    def run(self) -> None:  # type: ignore[override]
        """Train (or resume) for ``max_epochs`` epochs.

        Calling ``run()`` again after a termination (time limit, ``terminate()``) continues from the last completed
        iteration, mid-epoch included.
        """
        el = self.state.epoch_length
        if el == 0:
            warnings.warn("`train_data_loader` is empty or `epoch_length` is 0: nothing to train.")
            return
        self.scaler = self._make_scaler()
        if self.should_terminate and el:  # continue a terminated run mid-epoch instead of starting a new epoch
            self.state.epoch = self.state.iteration // el
            self.should_terminate = False
        Engine.run(self, data=self._data, max_epochs=self.state.max_epochs)

    # ------------------------------------------------------------------ iteration
    def _get_views(self, batchdata: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        device, kw = self.state.device, dict(non_blocking=self.non_blocking, **self.to_kwargs)
        if self.views_fn is not None:
            images = batchdata[self.image_key] if isinstance(batchdata, Mapping) else batchdata
            if not isinstance(images, torch.Tensor):
                raise ValueError(f"batch['{self.image_key}'] must be a tensor (B, C, *spatial), got {type(images)}.")
            with torch.no_grad():
                global_views, local_views = self.views_fn(plain_tensor(images).to(device, **kw))
        else:
            if not isinstance(batchdata, Mapping) or self.global_key not in batchdata:
                keys = list(batchdata) if isinstance(batchdata, Mapping) else type(batchdata).__name__
                raise ValueError(
                    f"the batch must be a dict with the global views under '{self.global_key}' (or give views_fn), "
                    f"got {keys}."
                )
            global_views, local_views = batchdata[self.global_key], batchdata.get(self.local_key)
        global_views = plain_tensor(global_views).to(device, **kw)
        if global_views.ndim < 4:
            raise ValueError(f"global views must be (G, B, C, *spatial), got shape {tuple(global_views.shape)}.")
        if local_views is not None:
            local_views = plain_tensor(local_views).to(device, **kw)
            if local_views.shape[0] == 0:
                local_views = None
            elif local_views.shape[1] != global_views.shape[1]:
                raise ValueError(
                    f"local views (L, B, ...) {tuple(local_views.shape)} and global views (G, B, ...) "
                    f"{tuple(global_views.shape)} must have the same batch size B."
                )
        return global_views, local_views

    def _encode(self, views: torch.Tensor) -> torch.Tensor:
        """(V, B, C, *S) -> (V, B, D) in one network pass."""
        v, b = views.shape[:2]
        x = views.reshape(v * b, *views.shape[2:])
        if self.channels_last:
            fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(x.ndim)
            if fmt is not None:
                if not self._memory_format_set:
                    self.network.to(memory_format=fmt)
                    self._memory_format_set = True
                x = x.contiguous(memory_format=fmt)
        z = self.inferer(x, self.network)
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[0] != v * b:
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(
                f"network must map (N, C, *spatial) to projections (N, D); input {tuple(x.shape)} gave {shape}."
            )
        return z.reshape(v, b, -1)

    def _loss_terms(self, z_global: torch.Tensor, z_local: torch.Tensor | None) -> dict[str, torch.Tensor]:
        fn = self.loss_function
        out = fn.compute_terms(z_global, z_local) if hasattr(fn, "compute_terms") else fn(z_global, z_local)
        if isinstance(out, torch.Tensor):
            out = {"loss": out}
        if not isinstance(out, Mapping) or "loss" not in out:
            raise ValueError(f"loss_function must return a Tensor or a dict with a 'loss' entry, got {type(out)}.")
        return dict(out)

    def _after_optimizer_step(self) -> None:
        """Called after each optimizer step (e.g. to update an EMA teacher); does nothing here."""

    def _autocast(self) -> contextlib.AbstractContextManager:
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.state.device.type, **{"dtype": self.amp_dtype, **self.amp_kwargs})

    def _probe_pass(self, forward: Callable[[], Any], loss_terms: Callable[[Any], Mapping[str, Any]]) -> dict:
        """One step of the start-up probe: forward under autocast, loss, backward; no optimizer step and no events.

        Raises:
            NonFiniteLossError: when the loss is not finite under the probed setting (the probe then skips it).
        """
        self.network.train()
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            outputs = forward()
        loss = loss_terms(outputs)["loss"]
        if not math.isfinite(float(loss.detach())):
            raise NonFiniteLossError(self.state.iteration, self.state.epoch, {"loss": float(loss.detach())})
        loss.backward()
        return {}

    def _optimisation_step(
        self,
        forward: Callable[[], Any],
        loss_terms: Callable[[Any], Mapping[str, Any]],
        health_embedding: Callable[[Any], torch.Tensor],
    ) -> dict[str, float]:
        """The training part shared by the iterations: forward under autocast, loss, backward, optimizer step.

        Handles gradient accumulation (zeroing and stepping on the right micro-batches, DDP ``no_sync`` between),
        the ``GradScaler``, the non-finite loss check, the MONAI iteration events, the embedding health metrics
        (every ``health_interval`` iterations) and the scalar output dict.

        Args:
            forward: the network pass, run under autocast when ``amp``; its output is given to the two others.
            loss_terms: forward output -> a dict with ``"loss"`` (and ``"pred"``, ``"sigreg"`` when known), run
                outside autocast.
            health_embedding: forward output -> embeddings ``(B, D)`` whose spread and effective rank are logged.

        Returns:
            ``engine.state.output`` (see the class docstring).

        Raises:
            NonFiniteLossError: when the loss is NaN or infinite (before backward).
            NonFiniteGradientError: when a gradient is NaN or infinite (before the optimizer step; not with a
                ``GradScaler``, which skips such steps).
        """
        if self._probing:
            return self._probe_pass(forward, loss_terms)
        acc, el = self.accumulation_steps, self.state.epoch_length
        local_iter = (self.state.iteration - 1) % el if el else self.state.iteration - 1
        should_zero_grad = local_iter % acc == 0
        should_step = (local_iter + 1) % acc == 0 or (el is not None and local_iter + 1 == el)

        self.network.train()
        if should_zero_grad:
            self.optimizer.zero_grad(set_to_none=self.optim_set_to_none)
        autocast = self._autocast()
        # DDP: accumulate locally and all-reduce the gradients only on the micro-batch that steps
        no_sync = not should_step and isinstance(self.network, torch.nn.parallel.DistributedDataParallel)
        with self.network.no_sync() if no_sync else contextlib.nullcontext():
            with autocast:
                outputs = forward()
            self.fire_event(IterationEvents.FORWARD_COMPLETED)
            terms = loss_terms(outputs)
            self.fire_event(IterationEvents.LOSS_COMPLETED)
            values = {
                k: float(torch.as_tensor(terms.get(k, float("nan"))).detach()) for k in ("loss", "pred", "sigreg")
            }
            if not math.isfinite(values["loss"]):
                raise NonFiniteLossError(self.state.iteration, self.state.epoch, values)
            loss = terms["loss"] / acc if acc > 1 else terms["loss"]
            (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        self.fire_event(IterationEvents.BACKWARD_COMPLETED)
        if should_step:
            if self.scaler is None:  # a GradScaler skips non-finite steps itself
                self._check_gradients()
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            self._after_optimizer_step()

        if self.state.health is None or (self.state.iteration - 1) % self.health_interval == 0:
            z0 = health_embedding(outputs).detach().float()
            nan = float("nan")
            self.state.health = (embedding_std(z0), effective_rank(z0)) if z0.shape[0] > 1 else (nan, nan)
        self.state.output = {
            **values,
            "lr": float(self.optimizer.param_groups[0]["lr"]),
            "embedding_std": self.state.health[0],
            "effective_rank": self.state.health[1],
        }
        self.fire_event(IterationEvents.MODEL_COMPLETED)
        return self.state.output

    def _check_gradients(self) -> None:
        """Raise :class:`NonFiniteGradientError` when a gradient holds NaN / inf (one fused norm over all of them)."""
        named = [(n, p.grad) for n, p in self.network.named_parameters() if p.grad is not None]
        if not named:
            return
        norms = torch.stack(torch._foreach_norm([g for _, g in named]))
        finite = torch.isfinite(norms)
        if not bool(finite.all()):
            bad = [name for (name, _), ok in zip(named, finite.tolist()) if not ok]
            raise NonFiniteGradientError(self.state.iteration, self.state.epoch, bad)

    def _iteration(self, engine: LeJEPATrainer, batchdata: Any) -> dict[str, float]:  # type: ignore[override]
        """One LeJEPA step on ``batchdata``; returns the scalar output dict (see the class docstring)."""
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        global_views, local_views = engine._get_views(batchdata)

        def forward() -> tuple[torch.Tensor, torch.Tensor | None]:
            z_global = engine._encode(global_views)
            return z_global, engine._encode(local_views) if local_views is not None else None

        def loss_terms(z: tuple[torch.Tensor, torch.Tensor | None]) -> dict[str, torch.Tensor]:
            return engine._loss_terms(z[0].float(), None if z[1] is None else z[1].float())

        return engine._optimisation_step(forward, loss_terms, lambda z: z[0][0])
