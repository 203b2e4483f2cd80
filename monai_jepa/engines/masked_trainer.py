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
"""Masked-latent-prediction pretraining engine (I-JEPA / V-JEPA style objective kept from collapse by SIGReg)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader

from monai_jepa.engines.rng import derive_seed
from monai_jepa.engines.trainer import LeJEPATrainer, plain_tensor

__all__ = ["MaskedLatentTrainer"]

_TERMS = ("loss", "pred", "sigreg")


class _MaskSeed:
    """Adapter giving a mask function's random state ``manual_seed`` (per-epoch reseeding) and ``R`` (checkpoints)."""

    def __init__(self, mask_fn: Any, offset: int) -> None:
        self.mask_fn, self.offset = mask_fn, offset

    @property
    def R(self) -> Any:  # noqa: N802 (MONAI Randomizable name)
        return self.mask_fn.R

    def manual_seed(self, seed: int) -> None:
        self.mask_fn.set_random_state(derive_seed(seed, self.offset))


class MaskedLatentTrainer(LeJEPATrainer):
    """Masked latent prediction trainer: :class:`~monai_jepa.engines.LeJEPATrainer`'s machinery, another iteration.

    ``network`` is a :class:`~monai_jepa.networks.MaskedLatentModel` (encoder + predictor in one module, so DDP wraps
    one module and checkpoints hold both). One iteration: encode the full input once (the targets), encode the
    context tokens of each mask, predict the target embeddings, evaluate
    ``loss_function.compute_terms(pred, targets, sigreg_inputs)`` in float32 for each mask and average the terms over
    the masks (e.g. V-JEPA's short- and long-range masks). As in :func:`monai_jepa.losses.masked_latent_step`, SIGReg
    scores the pooled context embeddings ``(B, D)`` and, without teacher, the target tokens ``(B * K_t, D)``.

    The masks come from the batch (``batch[context_key]`` ``(B, K_c)`` and ``batch[target_key]`` ``(B, K_t)``, e.g.
    written by :class:`~monai_jepa.transforms.RandBlockMaskd`; give sequences of keys for several masks per sample),
    or from ``mask_fn`` called on the training side with the batch size: ``mask_fn(B) -> (context_idx, target_idx)``
    (e.g. a :class:`~monai_jepa.transforms.MultiBlockMaskGenerator`), or a list of such pairs, or ``mask_fn`` is a
    sequence of such callables (one mask each). Mask functions with a MONAI-style random state ``R`` and
    ``set_random_state`` (the mask generators) are reseeded every epoch and their states are saved in checkpoints
    by :class:`~monai_jepa.engines.JEPACheckpointer`, like ``views_fn`` in the parent class.

    ``teacher`` (optional, the EMA baseline of I-JEPA / V-JEPA, :class:`~monai_jepa.losses.EMATeacher` of the
    encoder) produces the targets without gradient and is updated after each optimizer step. Put it in the
    checkpoint with ``JEPACheckpointer(..., save_dict={"teacher": teacher})``; build the optimizer from
    ``network.parameters()`` only.

    ``engine.state.output`` has the keys of :data:`~monai_jepa.engines.OUTPUT_KEYS`: ``loss``, ``pred``, ``sigreg``
    (mean over masks), ``lr``, and ``embedding_std`` / ``effective_rank`` of the pooled context embeddings of the
    first mask (every ``health_interval`` iterations).

    Args:
        device: the training device.
        max_epochs: number of epochs to train.
        train_data_loader: iterable of batches, dicts with ``image_key`` (B, C, *S) (and the mask keys without
            ``mask_fn``).
        network: a :class:`~monai_jepa.networks.MaskedLatentModel`, or any module with
            ``forward(images, context_idx, target_idx, target_tokens=None) -> [(pred, targets, context_pooled), ...]``.
        optimizer: optimizer over ``network``'s parameters.
        loss_function: :class:`~monai_jepa.losses.MaskedLatentLoss`, or any object with
            ``compute_terms(pred, targets, embeddings_for_sigreg) -> {"loss", ...}``.
        mask_fn: optional mask function(s), see above. None: the masks are read from the batch.
        teacher: optional EMA teacher of the encoder (baseline): called as ``teacher(images) -> (tokens, pooled)``,
            updated with ``teacher.update()`` after each optimizer step.
        context_key: batch key(s) of the context indices when ``mask_fn`` is None.
        target_key: batch key(s) of the target indices when ``mask_fn`` is None (as many as ``context_key``).
        image_key: batch key of the images.
        kwargs: the other arguments of :class:`~monai_jepa.engines.LeJEPATrainer` (``amp``, ``channels_last``,
            ``accumulation_steps``, ``time_limit_minutes``, ``seed``, ``train_handlers``, ...), except ``views_fn``.
            ``amp="auto"`` / ``channels_last="auto"`` run the parent's start-up probe on this trainer's iteration
            (the teacher's state is restored afterwards too, and follows the chosen memory format).

    Example::

        enc = vit_small(in_channels=1, img_size=(16, 128, 128), patch_size=(2, 16, 16), spatial_dims=3)
        model = MaskedLatentModel(enc, JEPAPredictor(enc.grid_size, enc.embed_dim))
        masks = [MultiBlockMaskGenerator.from_preset(p, enc.grid_size, seed=0) for p in ("short_range", "long_range")]
        opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.05)
        trainer = MaskedLatentTrainer(
            device=torch.device("cuda"), max_epochs=100, train_data_loader=loader, network=model, optimizer=opt,
            loss_function=MaskedLatentLoss(lamb=0.05), mask_fn=masks,
            train_handlers=[StatsHandler(output_transform=jepa_scalars), JEPACheckpointer("./models")],
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
        loss_function: Any,
        mask_fn: Callable | Sequence[Callable] | None = None,
        teacher: torch.nn.Module | None = None,
        context_key: Hashable | Sequence[Hashable] = "context_idx",
        target_key: Hashable | Sequence[Hashable] = "target_idx",
        image_key: str = "image",
        **kwargs: Any,
    ) -> None:
        if kwargs.get("views_fn") is not None:
            raise ValueError("MaskedLatentTrainer takes masks (mask_fn or batch keys), not views_fn.")
        if not callable(getattr(loss_function, "compute_terms", None)):
            raise ValueError(
                "loss_function must have compute_terms(pred, targets, embeddings_for_sigreg), e.g. MaskedLatentLoss; "
                f"got {type(loss_function).__name__}."
            )
        fns = [] if mask_fn is None else ([mask_fn] if callable(mask_fn) else list(mask_fn))
        if mask_fn is not None and (not fns or not all(callable(f) for f in fns)):
            raise ValueError(f"mask_fn must be None, a callable or a non-empty sequence of callables, got {mask_fn!r}.")
        if teacher is not None and not callable(getattr(teacher, "update", None)):
            raise ValueError(f"teacher must be an EMATeacher (with update()), got {type(teacher).__name__}.")
        ckeys = [context_key] if isinstance(context_key, str) else list(context_key)
        tkeys = [target_key] if isinstance(target_key, str) else list(target_key)
        if not ckeys or len(ckeys) != len(tkeys):
            raise ValueError(f"context_key and target_key must name as many masks, got {ckeys} and {tkeys}.")
        self.mask_fns = fns
        self.teacher = teacher
        self.context_keys, self.target_keys = ckeys, tkeys
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            train_data_loader=train_data_loader,
            network=network,
            optimizer=optimizer,
            loss_function=loss_function,
            image_key=image_key,
            **kwargs,
        )
        if teacher is not None:
            teacher.to(self.state.device)

    @property
    def rng_generators(self) -> list[Any]:
        """The parent's generators plus the random states of the mask functions (reseeded per epoch, checkpointed)."""
        gens = super().rng_generators
        for i, fn in enumerate(self.mask_fns):
            gen = getattr(fn, "generator", None)
            if isinstance(gen, torch.Generator):
                gens.append(gen)
            elif callable(getattr(fn, "set_random_state", None)) and hasattr(fn, "R"):
                gens.append(_MaskSeed(fn, offset=i))
        return gens

    def _probe_modules(self) -> list[torch.nn.Module]:
        """The parent's modules plus the EMA teacher, when there is one."""
        return super()._probe_modules() + ([self.teacher] if self.teacher is not None else [])

    # ------------------------------------------------------------------ iteration
    def _get_masks(self, batchdata: Any) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Images ``(B, C, *S)`` on the device and the per-mask context / target indices ``(B, K)``."""
        device, kw = self.state.device, dict(non_blocking=self.non_blocking, **self.to_kwargs)
        if not isinstance(batchdata, Mapping) or self.image_key not in batchdata:
            keys = list(batchdata) if isinstance(batchdata, Mapping) else type(batchdata).__name__
            raise ValueError(f"the batch must be a dict with the images under '{self.image_key}', got {keys}.")
        images = plain_tensor(batchdata[self.image_key]).to(device, **kw)
        b = images.shape[0]
        if self.mask_fns:
            pairs: list = []
            for fn in self.mask_fns:
                out = fn(b)
                pairs.extend(out if isinstance(out, list) else [out])
        else:
            missing = [k for k in self.context_keys + self.target_keys if k not in batchdata]
            if missing:
                raise ValueError(
                    f"the batch has no mask entries {missing} (give mask_fn, or add RandBlockMaskd to the transforms); "
                    f"it holds {list(batchdata)}."
                )
            pairs = [(batchdata[c], batchdata[t]) for c, t in zip(self.context_keys, self.target_keys)]
        contexts, targets = [], []
        for ctx, tgt in pairs:
            ctx, tgt = torch.as_tensor(ctx).to(device, **kw), torch.as_tensor(tgt).to(device, **kw)
            if ctx.ndim != 2 or tgt.ndim != 2 or ctx.shape[0] != b or tgt.shape[0] != b:
                raise ValueError(
                    f"context and target indices must be (B={b}, K) tensors, got {tuple(ctx.shape)} and "
                    f"{tuple(tgt.shape)}."
                )
            contexts.append(ctx)
            targets.append(tgt)
        return images, contexts, targets

    def _iteration(self, engine: MaskedLatentTrainer, batchdata: Any) -> dict[str, float]:  # type: ignore[override]
        """One masked-latent step on ``batchdata``; returns the scalar output dict (see the class docstring)."""
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        images, contexts, targets = engine._get_masks(batchdata)
        if engine.channels_last:
            fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(images.ndim)
            if fmt is not None:
                if not engine._memory_format_set:
                    engine.network.to(memory_format=fmt)
                    if engine.teacher is not None:
                        engine.teacher.to(memory_format=fmt)
                    engine._memory_format_set = True
                images = images.contiguous(memory_format=fmt)

        def forward() -> list:
            teacher_tokens = None if engine.teacher is None else engine.teacher(images)[0]
            return engine.network(images, contexts, targets, teacher_tokens)

        def loss_terms(outputs: list) -> dict[str, torch.Tensor]:
            per_mask = []
            for out in outputs:
                pred, tgt, pooled = (t.float() for t in out)
                sig = [pooled] if engine.teacher is not None else [pooled, tgt.flatten(0, 1)]
                per_mask.append(engine.loss_function.compute_terms(pred, tgt, sig))
            return {k: torch.stack([torch.as_tensor(t[k]) for t in per_mask]).mean() for k in _TERMS}

        return engine._optimisation_step(forward, loss_terms, lambda outputs: outputs[0][2])

    def _after_optimizer_step(self) -> None:
        """Update the EMA teacher, when there is one."""
        if self.teacher is not None:
            self.teacher.update()
