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
"""Masked latent prediction (I-JEPA / V-JEPA style) kept from collapse by SIGReg, and the EMA-teacher baseline.

The objective in a few lines (:func:`masked_latent_step`): the encoder embeds the full input once; the embeddings of
the target tokens are the targets. The same encoder embeds only the context tokens; the predictor predicts the target
embeddings from them. The loss is

    L = (1 - lambda) * mean |pred - LN(targets)|  +  lambda * SIGReg

with no teacher and no stop-gradient by default: SIGReg keeps the embeddings from collapsing. :class:`EMATeacher`
provides the usual exponential-moving-average target encoder of I-JEPA / V-JEPA as a clearly named baseline.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.utils import look_up_option

from monai_jepa.losses.lejepa import _check_lamb
from monai_jepa.losses.sigreg import SIGReg

__all__ = ["MaskedLatentLoss", "EMATeacher", "masked_latent_step"]

SUPPORTED_LOSSES = ("l1", "l2", "smooth_l1")


class MaskedLatentLoss(nn.Module):
    """Masked latent prediction loss with SIGReg.

    With predictions ``p`` and targets ``t`` of shape ``(B, K_t, D)``:

        L_pred = mean over samples, tokens and dimensions of loss(p, LN(t))      (LN: LayerNorm without affine)
        L = (1 - lambda) L_pred + lambda * mean_j SIGReg(e_j)

    The targets are the token embeddings of the full input produced by the SAME encoder (no teacher); by default the
    gradient flows into them (``stop_gradient=False``), as in LeJEPA. ``e_j`` are the embeddings given to SIGReg; the
    recommended choice, used by :func:`masked_latent_step`, is the pooled embedding of the context pass ``(B, D)``
    (an image-level embedding) and the raw target tokens flattened ``(B * K_t, D)`` (token-level embeddings), each
    scored separately and averaged. When none are given, SIGReg is applied to the flattened raw target tokens.
    The SIGReg term is computed (for monitoring) even when ``lamb == 0``, then without gradient.

    Args:
        lamb: trade-off ``lambda`` in [0, 1] (default 0.05).
        loss: ``"l1"`` (V-JEPA), ``"l2"`` (mean squared error) or ``"smooth_l1"`` (I-JEPA).
        normalize_targets: LayerNorm the targets over the embedding dimension (I-JEPA / V-JEPA).
        stop_gradient: detach the targets in the prediction term (the usual JEPA heuristic, for comparison).
        smooth_l1_beta: transition point of the smooth L1 loss.
        num_slices: random directions per SIGReg call (default 1024).
        num_knots: SIGReg integration knots (default 17).
        t_max: SIGReg integration half-width (default 5).
        seed: seed of SIGReg's direction generator.
        distributed: evaluate SIGReg over the global batch when torch.distributed is initialised.

    Example::

        >>> loss_fn = MaskedLatentLoss(lamb=0.05, loss="l1")
        >>> pred, targets = torch.randn(8, 20, 64), torch.randn(8, 20, 64)
        >>> terms = loss_fn.compute_terms(pred, targets, [torch.randn(8, 64), targets.flatten(0, 1)])
        >>> terms["loss"], terms["pred"], terms["sigreg"]
    """

    def __init__(
        self,
        lamb: float = 0.05,
        loss: str = "l1",
        normalize_targets: bool = True,
        stop_gradient: bool = False,
        smooth_l1_beta: float = 1.0,
        num_slices: int = 1024,
        num_knots: int = 17,
        t_max: float = 5.0,
        seed: int = 0,
        distributed: bool = True,
    ) -> None:
        super().__init__()
        self.lamb = _check_lamb(lamb)
        if not smooth_l1_beta > 0:
            raise ValueError(f"smooth_l1_beta must be > 0, got {smooth_l1_beta}.")
        self.loss = look_up_option(loss, SUPPORTED_LOSSES)
        self.normalize_targets = normalize_targets
        self.stop_gradient = stop_gradient
        self.smooth_l1_beta = float(smooth_l1_beta)
        self.sigreg = SIGReg(num_slices, num_knots, t_max, seed, distributed)

    def prediction_loss(self, pred: torch.Tensor, target_tokens: torch.Tensor) -> torch.Tensor:
        """The prediction term ``L_pred`` (fp32 scalar); see the class docstring."""
        if pred.ndim != 3 or pred.shape != target_tokens.shape:
            raise ValueError(
                f"pred and target_tokens must both have shape (B, K_t, D), got {tuple(pred.shape)} and "
                f"{tuple(target_tokens.shape)}."
            )
        target = target_tokens.float()
        if self.stop_gradient:
            target = target.detach()
        if self.normalize_targets:
            target = F.layer_norm(target, target.shape[-1:])
        pred = pred.float()
        if self.loss == "l1":
            return F.l1_loss(pred, target)
        if self.loss == "l2":
            return F.mse_loss(pred, target)
        return F.smooth_l1_loss(pred, target, beta=self.smooth_l1_beta)

    def _sigreg(self, embeddings: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        items = [embeddings] if isinstance(embeddings, torch.Tensor) else list(embeddings)
        if not items:
            raise ValueError("embeddings_for_sigreg must be a tensor or a non-empty sequence of tensors.")
        for e in items:
            if not isinstance(e, torch.Tensor) or e.ndim not in (2, 3) or e.shape[-2] < 2:
                shape = tuple(e.shape) if isinstance(e, torch.Tensor) else type(e).__name__
                raise ValueError(f"embeddings_for_sigreg entries must be (N, D) or (V, N, D) with N >= 2, got {shape}.")
        return torch.stack([self.sigreg(e) for e in items]).mean()

    def compute_terms(
        self,
        pred: torch.Tensor,
        target_tokens: torch.Tensor,
        embeddings_for_sigreg: torch.Tensor | Sequence[torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """
        Args:
            pred: predicted target embeddings ``(B, K_t, D)``.
            target_tokens: encoder embeddings of the target tokens of the full input ``(B, K_t, D)``.
            embeddings_for_sigreg: ``(N, D)`` / ``(V, N, D)`` embeddings, or a sequence of them (each scored
                separately, then averaged); None: the target tokens flattened to ``(B * K_t, D)``.

        Returns:
            ``{"loss": L, "pred": L_pred, "sigreg": mean SIGReg}``, fp32 scalars.
        """
        pred_loss = self.prediction_loss(pred, target_tokens)
        if embeddings_for_sigreg is None:
            embeddings_for_sigreg = target_tokens.flatten(0, 1)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.lamb > 0):
            sigreg = self._sigreg(embeddings_for_sigreg)
        return {"loss": (1.0 - self.lamb) * pred_loss + self.lamb * sigreg, "pred": pred_loss, "sigreg": sigreg}

    def forward(
        self,
        pred: torch.Tensor,
        target_tokens: torch.Tensor,
        embeddings_for_sigreg: torch.Tensor | Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The total loss, see :meth:`compute_terms`."""
        return self.compute_terms(pred, target_tokens, embeddings_for_sigreg)["loss"]


class EMATeacher(nn.Module):
    """Exponential-moving-average copy of an encoder: the target encoder of I-JEPA / V-JEPA, as a BASELINE.

    The teacher starts as a deep copy of ``module`` and never receives gradients. After each optimizer step,
    :meth:`update` moves every teacher parameter towards the student's, ``teacher = m * teacher + (1 - m) * student``,
    and copies the buffers. The momentum ``m`` follows a cosine schedule from ``momentum`` to ``final_momentum``
    over ``total_steps`` updates (constant ``momentum`` when ``total_steps`` is None). Calling the teacher runs the
    copy without gradient. The student is referenced, not registered, so the teacher's ``state_dict`` holds only the
    copy and the update counter; build the optimizer from the student's parameters.

    Args:
        module: the student encoder (a ``DistributedDataParallel`` / ``DataParallel`` wrapper is unwrapped).
        momentum: initial momentum in [0, 1] (0.996 in I-JEPA, 0.998 in V-JEPA).
        final_momentum: momentum at the end of the schedule, in [momentum, 1].
        total_steps: number of updates of the schedule; None for a constant momentum.

    Example::

        >>> teacher = EMATeacher(encoder, momentum=0.996, total_steps=10_000)
        >>> terms = masked_latent_step(encoder, predictor, x, ctx_idx, tgt_idx, MaskedLatentLoss(lamb=0.0), teacher)
        >>> terms["loss"].backward(); optimizer.step(); teacher.update()
    """

    def __init__(
        self, module: nn.Module, momentum: float = 0.996, final_momentum: float = 1.0, total_steps: int | None = None
    ) -> None:
        super().__init__()
        if not 0.0 <= momentum <= final_momentum <= 1.0:
            raise ValueError(f"need 0 <= momentum <= final_momentum <= 1, got {momentum} and {final_momentum}.")
        if total_steps is not None and (int(total_steps) != total_steps or total_steps < 1):
            raise ValueError(f"total_steps must be None or a positive int, got {total_steps!r}.")
        student = (
            module.module if isinstance(module, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else module
        )
        self._student = (student,)  # a tuple keeps it out of the registered submodules and the state_dict
        self.module = copy.deepcopy(student).requires_grad_(False)
        self.base_momentum, self.final_momentum = float(momentum), float(final_momentum)
        self.total_steps = None if total_steps is None else int(total_steps)
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))

    def momentum(self, step: int | None = None) -> float:
        """Momentum used by the update at ``step`` (default: the next update)."""
        step = int(self.step) if step is None else int(step)
        if self.total_steps is None:
            return self.base_momentum
        progress = min(step, self.total_steps) / self.total_steps
        return self.final_momentum - (self.final_momentum - self.base_momentum) * (1 + math.cos(math.pi * progress)) / 2

    @torch.no_grad()
    def update(self) -> float:
        """Move the teacher towards the student; returns the momentum used."""
        m = self.momentum()
        student = self._student[0]
        teacher_params = list(self.module.parameters())
        student_params = list(student.parameters())
        if len(teacher_params) != len(student_params):
            raise RuntimeError("the student's parameters no longer match the teacher's; rebuild the EMATeacher.")
        for t, s in zip(teacher_params, student_params):
            t.lerp_(s.detach().to(t.dtype), 1.0 - m)
        for t, s in zip(self.module.buffers(), student.buffers()):
            t.copy_(s)
        self.step += 1
        return m

    def forward(self, *args, **kwargs):
        """Run the teacher copy without gradient."""
        with torch.no_grad():
            return self.module(*args, **kwargs)


def masked_latent_step(
    encoder: nn.Module,
    predictor: nn.Module,
    images: torch.Tensor,
    context_idx: torch.Tensor,
    target_idx: torch.Tensor,
    loss_fn: MaskedLatentLoss,
    teacher: EMATeacher | None = None,
) -> dict[str, torch.Tensor]:
    """One masked-latent-prediction objective evaluation (the whole method in a few lines).

    Args:
        encoder: token encoder with ``forward(x, indices=None) -> (tokens (B, N, D), pooled (B, D))``, such as
            :py:class:`~monai_jepa.networks.JEPAViT`.
        predictor: ``forward(context_tokens, context_idx, target_idx) -> (B, K_t, D)``, such as
            :py:class:`~monai_jepa.networks.JEPAPredictor`.
        images: input batch ``(B, C, *spatial)``.
        context_idx: ``(B, K_c)`` token indices seen by the encoder.
        target_idx: ``(B, K_t)`` token indices to predict (disjoint from ``context_idx``).
        loss_fn: the :py:class:`MaskedLatentLoss`.
        teacher: optional :py:class:`EMATeacher` (baseline): it then produces the targets, without gradient.

    Returns:
        ``{"loss", "pred", "sigreg"}`` from :py:meth:`MaskedLatentLoss.compute_terms`. SIGReg scores the pooled
        context embedding and, without teacher, the target tokens.
    """
    tokens, _ = (encoder if teacher is None else teacher)(images)  # full input, encoded once
    index = target_idx.long().to(tokens.device).unsqueeze(-1).expand(-1, -1, tokens.shape[-1])
    targets = torch.gather(tokens, 1, index)
    context_tokens, context_pooled = encoder(images, indices=context_idx)
    pred = predictor(context_tokens, context_idx, target_idx)
    sigreg_inputs = [context_pooled] if teacher is not None else [context_pooled, targets.flatten(0, 1)]
    return loss_fn.compute_terms(pred, targets, sigreg_inputs)
