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
"""Token-grid masks for masked latent prediction (I-JEPA / V-JEPA style), for 2D, 3D and 2D+t grids.

Masks live on the token grid of the encoder (``grid_size``: tokens per axis; for 2D+t the first axis is time), so one
generator serves images, volumes and videos. A mask is a pair of disjoint index sets into the flattened, row-major
token grid (the order of :py:class:`monai_jepa.networks.JEPAViT`'s ``indices``): ``context_idx`` (the tokens the
encoder sees) and ``target_idx`` (the tokens the predictor must predict).

Every sample gets exactly ``num_context`` context and ``num_target`` target tokens, so per-sample masks stack into
``(B, K_c)`` / ``(B, K_t)`` tensors without truncating a batch to its smallest mask (which would make the real
masking ratio depend on the batch size). The drawn sets are brought to these counts as follows (see
:py:meth:`MaskGenerator.sample`):

1. target: a uniform random subset of the drawn target set when it is larger than ``num_target``; when it is smaller,
   it is topped up first with tokens that are neither target nor context (outside the I-JEPA context block), then
   with context tokens (which thereby leave the context);
2. context: a uniform random subset of the remaining context set when it is larger than ``num_context``; when it is
   smaller, it is topped up first with tokens outside the context block, then with drawn target tokens that were not
   selected as targets (in pure complement masking the only tokens left).

Context and target indices are always disjoint and sorted.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable, Transform
from monai.utils import look_up_option
from monai.utils.misc import MAX_SEED

from monai_jepa.transforms.views import _check_range

__all__ = [
    "FutureFrameMask",
    "MASK_PRESETS",
    "MaskGenerator",
    "MultiBlockMaskGenerator",
    "RandomTubeMask",
    "RandBlockMask",
    "RandBlockMaskd",
    "indices_to_mask",
]

#: Published masking recipes: V-JEPA's short- and long-range masks (blocks spanning all frames, meant for 2D+t grids;
#: pass ``span_axis0=False`` to use them on a spatial 2D / 3D grid) and I-JEPA's multi-block mask (4 target blocks,
#: context = a large block minus the targets).
MASK_PRESETS: dict[str, dict[str, Any]] = {
    "short_range": {"num_blocks": 8, "block_scale": (0.15, 0.15), "aspect_ratio": (0.75, 1.5), "span_axis0": True},
    "long_range": {"num_blocks": 2, "block_scale": (0.7, 0.7), "aspect_ratio": (0.75, 1.5), "span_axis0": True},
    "multiblock": {
        "num_blocks": 4,
        "block_scale": (0.15, 0.2),
        "aspect_ratio": (0.75, 1.5),
        "span_axis0": False,
        "context_scale": (0.85, 1.0),
    },
}

# draws used to estimate the default token counts, with a fixed seed so the defaults are deterministic
_NUM_ESTIMATE_DRAWS = 256
_ESTIMATE_SEED = 0
# attempts at drawing a context with at least ``min_keep`` tokens before the last draw is kept
_MAX_TRIES = 20


def _check_grid(grid_size: Sequence[int]) -> tuple[int, ...]:
    try:
        grid = tuple(grid_size)
    except TypeError:
        raise ValueError(f"`grid_size` must be a sequence of 2 or 3 positive ints, got {grid_size!r}.") from None
    if len(grid) not in (2, 3) or not all(isinstance(g, numbers.Integral) and g >= 1 for g in grid):
        raise ValueError(f"`grid_size` must be a sequence of 2 or 3 positive ints, got {grid_size!r}.")
    if math.prod(grid) < 2:
        raise ValueError(f"`grid_size` must hold at least 2 tokens, got {grid_size!r}.")
    return tuple(int(g) for g in grid)


def _check_count(value: int | None, name: str) -> int | None:
    if value is not None and (not isinstance(value, numbers.Integral) or value < 1):
        raise ValueError(f"`{name}` must be None or a positive int, got {value!r}.")
    return None if value is None else int(value)


def _choice(rng: np.random.RandomState, cand: np.ndarray, n: int, weights: np.ndarray | None) -> np.ndarray:
    """``n`` distinct entries of ``cand``, uniformly or with probability proportional to ``weights[cand]``."""
    if n >= len(cand):
        return cand
    if weights is None:
        return rng.choice(cand, n, replace=False)
    # a small floor keeps every candidate drawable, so sampling without replacement never runs out
    p = weights[cand].astype(np.float64) + 1e-6 * max(float(weights[cand].max()), 1.0)
    return rng.choice(cand, n, replace=False, p=p / p.sum())


def _fill(
    rng: np.random.RandomState,
    members: np.ndarray,
    count: int,
    tiers: Sequence[np.ndarray],
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Exactly ``count`` token indices: a subset of ``members`` (flat bool), or all of them topped up from ``tiers``
    (flat bools, tried in order)."""
    idx = np.flatnonzero(members)
    if len(idx) >= count:
        return _choice(rng, idx, count, weights)
    taken, need, used = [idx], count - len(idx), members.copy()
    for tier in tiers:
        if need == 0:
            break
        extra = _choice(rng, np.flatnonzero(tier & ~used), need, weights)
        used[extra] = True
        taken.append(extra)
        need -= len(extra)
    if need > 0:  # cannot happen while num_context + num_target <= num_tokens; guard against misuse
        raise RuntimeError(f"could not select {count} tokens: only {count - need} available.")
    return np.concatenate(taken)


def indices_to_mask(indices: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """Boolean token mask from index sets.

    Args:
        indices: integer tensor ``(K,)`` or ``(B, K)`` of indices into the flattened token grid.
        num_tokens: total number of tokens ``N``.

    Returns:
        bool tensor ``(N,)`` or ``(B, N)``, True at the given indices.

    Example::

        >>> indices_to_mask(torch.tensor([[0, 2], [1, 3]]), 4)
        tensor([[ True, False,  True, False],
                [False,  True, False,  True]])
    """
    if indices.ndim not in (1, 2) or indices.dtype not in (torch.int64, torch.int32):
        raise ValueError(
            f"`indices` must be an integer tensor (K,) or (B, K), got {indices.dtype} {tuple(indices.shape)}."
        )
    mask = torch.zeros(*indices.shape[:-1], num_tokens, dtype=torch.bool, device=indices.device)
    return mask.scatter_(-1, indices.long(), True)


class MaskGenerator:
    """Base class of token-grid mask generators with a fixed number of context and target tokens per sample.

    Subclasses implement :py:meth:`draw`, which returns the drawn (variable-size) target and context sets; this class
    brings them to exactly :py:attr:`num_context` / :py:attr:`num_target` tokens (see the module docstring) and
    stacks samples into batches. The defaults of the counts are the mean sizes of the drawn sets over 256 draws with
    a fixed seed (the context count after target top-ups), so they follow the expected masking ratio and are the same
    in every run.

    Randomness comes from ``self.R`` (a ``numpy.random.RandomState``, as in MONAI's ``Randomizable``), or from the
    ``rng`` passed to :py:meth:`sample`.

    Args:
        grid_size: tokens per axis, 2 or 3 ints (2D+t: time first).
        num_context: context tokens per sample ``K_c``; None: the expected context size.
        num_target: target tokens per sample ``K_t``; None: the expected target size.
        seed: seed of ``self.R``; None for a non-deterministic seed.

    Attributes:
        grid_size: the token grid.
        num_tokens: ``prod(grid_size)``.
        num_context: context tokens per sample.
        num_target: target tokens per sample.
    """

    def __init__(self, grid_size: Sequence[int], seed: int | None = None) -> None:
        self.grid_size = _check_grid(grid_size)
        self.num_tokens = math.prod(self.grid_size)
        self.num_context = 0
        self.num_target = 0
        self.R = np.random.RandomState()
        self.set_random_state(seed)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> MaskGenerator:
        """Reseed ``self.R`` with ``seed`` or replace it with ``state`` (MONAI ``Randomizable`` semantics)."""
        if state is not None:
            if not isinstance(state, np.random.RandomState):
                raise ValueError(f"`state` must be a numpy.random.RandomState, got {type(state).__name__}.")
            self.R = state
        else:
            self.R = np.random.RandomState(None if seed is None else int(seed) % MAX_SEED)
        return self

    def draw(self, rng: np.random.RandomState, **kwargs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Draw one mask before count fixing.

        Returns:
            ``(target, context, weights)``: flat bool arrays ``(N,)`` (disjoint) and optional non-negative float
            weights ``(N,)`` that bias which tokens are kept or added as targets (None: uniform).
        """
        raise NotImplementedError

    def _init_counts(self, num_context: int | None, num_target: int | None, **draw_kwargs: Any) -> None:
        """Set :py:attr:`num_context` / :py:attr:`num_target`, estimating the missing ones from draws."""
        num_context = _check_count(num_context, "num_context")
        num_target = _check_count(num_target, "num_target")
        n = self.num_tokens
        if num_context is None or num_target is None:
            rng = np.random.RandomState(_ESTIMATE_SEED)
            sizes = np.array(
                [
                    (t.sum(), c.sum(), (~t & ~c).sum())
                    for t, c, _ in (self.draw(rng, **draw_kwargs) for _ in range(self._num_estimate_draws))
                ],
                dtype=np.float64,
            )
            t_size, c_size, neither = sizes.T
            if num_target is None:
                num_target = int(np.clip(round(t_size.mean()), 1, n - 1))
            if num_context is None:
                # target top-ups come from outside both sets first, then from the context
                pool = c_size - np.maximum(0.0, num_target - t_size - neither)
                num_context = int(np.clip(round(pool.mean()), 1, n - num_target))
        if num_context + num_target > n:
            raise ValueError(
                f"`num_context` + `num_target` must not exceed the {n} tokens of grid {self.grid_size}, "
                f"got {num_context} + {num_target}."
            )
        self.num_context, self.num_target = num_context, num_target

    _num_estimate_draws = _NUM_ESTIMATE_DRAWS

    @property
    def target_ratio(self) -> float:
        """Fraction of the grid predicted per sample, ``num_target / num_tokens``."""
        return self.num_target / self.num_tokens

    @property
    def context_ratio(self) -> float:
        """Fraction of the grid seen by the encoder per sample, ``num_context / num_tokens``."""
        return self.num_context / self.num_tokens

    def sample(self, rng: np.random.RandomState | None = None, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw one mask with exactly :py:attr:`num_context` context and :py:attr:`num_target` target tokens.

        Args:
            rng: random state to draw from; None uses ``self.R``.
            kwargs: forwarded to :py:meth:`draw` (e.g. a per-image probability map).

        Returns:
            ``(context_idx, target_idx)``: sorted, disjoint int64 tensors ``(K_c,)`` and ``(K_t,)``.
        """
        rng = self.R if rng is None else rng
        target, context, weights = self.draw(rng, **kwargs)
        neither = ~target & ~context
        tgt = _fill(rng, target, self.num_target, (neither, context), weights)
        chosen = np.zeros(self.num_tokens, dtype=bool)
        chosen[tgt] = True
        ctx = _fill(rng, context & ~chosen, self.num_context, (neither & ~chosen, target & ~chosen))
        return torch.from_numpy(np.sort(ctx)).long(), torch.from_numpy(np.sort(tgt)).long()

    def __call__(self, batch_size: int | None = None, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw one mask per sample from ``self.R``.

        Args:
            batch_size: None for one mask ``(K_c,)``, ``(K_t,)``; an int B for stacked masks ``(B, K_c)``, ``(B, K_t)``.
            kwargs: forwarded to :py:meth:`draw`.

        Returns:
            ``(context_idx, target_idx)`` int64 tensors.
        """
        if batch_size is None:
            return self.sample(**kwargs)
        if not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"`batch_size` must be None or a positive int, got {batch_size!r}.")
        pairs = [self.sample(**kwargs) for _ in range(int(batch_size))]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(grid_size={self.grid_size}, num_context={self.num_context}, "
            f"num_target={self.num_target})"
        )


class MultiBlockMaskGenerator(MaskGenerator):
    """Multi-block masks (I-JEPA / V-JEPA) on a 2D, 3D or 2D+t token grid.

    The target set is the union of ``num_blocks`` boxes. Each box covers a fraction of the grid drawn uniformly in
    ``block_scale`` (of the spatial plane / volume of axes 1.. when ``span_axis0``, where the box also spans all of
    axis 0: V-JEPA's blocks spanning all frames); the extent of each box axis after the first relative to the first is
    log-uniform in ``aspect_ratio``. Extents are rounded and clipped to the grid, and the box position is uniform over
    all positions inside the grid. The context set is the complement of the target set; with ``context_scale`` it is
    a further box with the proportions of the grid (I-JEPA's aspect 1 on a square grid) minus the target set. Draws
    whose context set has fewer than ``min_keep`` tokens are redrawn (up to 20 times; then the last draw is kept, and
    the fixed context count is reached by top-up).

    See :py:data:`MASK_PRESETS` and :py:meth:`from_preset` for the published recipes, and the module docstring for
    how every sample gets exactly ``num_context`` / ``num_target`` tokens.

    Args:
        grid_size: tokens per axis, 2 or 3 ints (2D+t: time first).
        num_blocks: number of target boxes (>= 1).
        block_scale: (min, max) fraction of the grid (of axes 1.. with ``span_axis0``) covered by one box, in (0, 1].
        aspect_ratio: (min, max) ratio of each box axis' extent to the first box axis' extent, log-uniform.
        span_axis0: boxes span the whole first axis (time in 2D+t).
        context_scale: None for context = complement of the targets; else (min, max) fraction of the grid covered by
            a context box (with the grid's proportions), from which the targets are removed.
        num_context: context tokens per sample; None: the expected context size (see :py:class:`MaskGenerator`).
        num_target: target tokens per sample; None: the expected size of the union of the boxes.
        min_keep: minimum drawn context size before a draw is accepted (>= 1).
        seed: seed of ``self.R``.

    Example::

        >>> gen = MultiBlockMaskGenerator((8, 14, 14), num_blocks=8, block_scale=(0.15, 0.15), span_axis0=True, seed=0)
        >>> context_idx, target_idx = gen(batch_size=4)  # (4, K_c), (4, K_t), the same K for every sample
        >>> gen = MultiBlockMaskGenerator.from_preset("multiblock", (14, 14))  # I-JEPA
    """

    def __init__(
        self,
        grid_size: Sequence[int],
        num_blocks: int = 4,
        block_scale: Sequence[float] = (0.15, 0.2),
        aspect_ratio: Sequence[float] = (0.75, 1.5),
        span_axis0: bool = False,
        context_scale: Sequence[float] | None = None,
        num_context: int | None = None,
        num_target: int | None = None,
        min_keep: int = 10,
        seed: int | None = None,
    ) -> None:
        super().__init__(grid_size, seed)
        if not isinstance(num_blocks, numbers.Integral) or num_blocks < 1:
            raise ValueError(f"`num_blocks` must be a positive int, got {num_blocks!r}.")
        if not isinstance(min_keep, numbers.Integral) or not 1 <= min_keep < self.num_tokens:
            raise ValueError(f"`min_keep` must be an int in [1, {self.num_tokens - 1}], got {min_keep!r}.")
        self.num_blocks = int(num_blocks)
        self.block_scale = _check_range(block_scale, "block_scale", 1.0)
        self.aspect_ratio = _check_range(aspect_ratio, "aspect_ratio")
        self.span_axis0 = bool(span_axis0)
        self.context_scale = None if context_scale is None else _check_range(context_scale, "context_scale", 1.0)
        self.min_keep = int(min_keep)
        self._box_axes = tuple(range(1 if self.span_axis0 else 0, len(self.grid_size)))
        self._init_counts(num_context, num_target)

    @classmethod
    def from_preset(cls, preset: str, grid_size: Sequence[int], **kwargs: Any) -> MultiBlockMaskGenerator:
        """A generator with the settings of :py:data:`MASK_PRESETS` ``[preset]``, overridden by ``kwargs``.

        Args:
            preset: ``"short_range"``, ``"long_range"`` (V-JEPA) or ``"multiblock"`` (I-JEPA).
            grid_size: tokens per axis.
            kwargs: any other constructor argument.
        """
        config = dict(look_up_option(preset, MASK_PRESETS))
        config.update(kwargs)
        return cls(grid_size, **config)

    def _box_extent(
        self, rng: np.random.RandomState, scale: tuple[float, float], aspect: tuple[float, float] | None
    ) -> np.ndarray:
        """Extent of a box along each box axis: volume fraction ~ U(scale); the extent of each axis relative to the
        first is log-uniform in ``aspect``, or (``aspect=None``) the box has the proportions of the grid."""
        sizes = np.array([self.grid_size[a] for a in self._box_axes], dtype=np.float64)
        fraction = rng.uniform(*scale)
        if aspect is None:
            extent = sizes * fraction ** (1.0 / len(sizes))
        else:
            log_ratio = rng.uniform(math.log(aspect[0]), math.log(aspect[1]), len(sizes) - 1)
            ratio = np.exp(np.concatenate([[0.0], log_ratio]))
            extent = ratio * (fraction * sizes.prod() / ratio.prod()) ** (1.0 / len(sizes))
        return np.clip(np.round(extent), 1, sizes).astype(np.int64)

    def _box_mask(self, start: np.ndarray, extent: np.ndarray) -> np.ndarray:
        mask = np.zeros(self.grid_size, dtype=bool)
        slices = [slice(None)] * len(self.grid_size)
        for a, s, e in zip(self._box_axes, start, extent):
            slices[a] = slice(int(s), int(s + e))
        mask[tuple(slices)] = True
        return mask

    def _random_box(
        self, rng: np.random.RandomState, scale: tuple[float, float], aspect: tuple[float, float] | None
    ) -> np.ndarray:
        extent = self._box_extent(rng, scale, aspect)
        sizes = np.array([self.grid_size[a] for a in self._box_axes])
        start = np.array([rng.randint(0, s - e + 1) for s, e in zip(sizes, extent)])
        return self._box_mask(start, extent)

    def _target_box(self, rng: np.random.RandomState, **kwargs: Any) -> np.ndarray:
        return self._random_box(rng, self.block_scale, self.aspect_ratio)

    def draw(self, rng: np.random.RandomState, **kwargs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Draw the union of target boxes and the context set (see the class docstring); flat bool arrays."""
        for _ in range(_MAX_TRIES):
            target = np.zeros(self.grid_size, dtype=bool)
            for _ in range(self.num_blocks):
                target |= self._target_box(rng, **kwargs)
            if self.context_scale is None:
                context = ~target
            else:
                context = self._random_box(rng, self.context_scale, None) & ~target
            if context.sum() >= self.min_keep:
                break
        return target.ravel(), context.ravel(), None


class RandomTubeMask(MaskGenerator):
    """Random tube masking, the baseline of V-JEPA's multi-block masking.

    A uniform random subset of ``round(mask_ratio * P)`` positions of the plane of axes 1.. (P positions) is masked
    in every index of axis 0 (tubes through time for 2D+t); the context is the rest. With ``span_axis0=False`` tokens
    are masked independently over the whole grid (MAE-style random masking). Every draw has the same counts.

    Args:
        grid_size: tokens per axis, 2 or 3 ints (2D+t: time first).
        mask_ratio: fraction of positions masked, in (0, 1) (default 0.9, as V-JEPA's masks).
        span_axis0: repeat the masked positions along axis 0 (tubes).
        num_context: context tokens per sample (at most the unmasked count); None: all unmasked tokens.
        num_target: target tokens per sample (at most the masked count); None: all masked tokens.
        seed: seed of ``self.R``.

    Example::

        >>> gen = RandomTubeMask((8, 14, 14), mask_ratio=0.9, seed=0)
        >>> context_idx, target_idx = gen(batch_size=2)  # (2, 8 * 20), (2, 8 * 176)
    """

    _num_estimate_draws = 1

    def __init__(
        self,
        grid_size: Sequence[int],
        mask_ratio: float = 0.9,
        span_axis0: bool = True,
        num_context: int | None = None,
        num_target: int | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(grid_size, seed)
        if not 0.0 < float(mask_ratio) < 1.0:
            raise ValueError(f"`mask_ratio` must lie in (0, 1), got {mask_ratio!r}.")
        self.mask_ratio = float(mask_ratio)
        self.span_axis0 = bool(span_axis0)
        self._repeat = self.grid_size[0] if self.span_axis0 else 1
        positions = self.num_tokens // self._repeat
        if positions < 2:
            raise ValueError(f"`grid_size` {self.grid_size} must hold at least 2 positions per index of axis 0.")
        self._num_masked = int(np.clip(round(self.mask_ratio * positions), 1, positions - 1))
        self._init_counts(None, None)
        for value, name, limit in (
            (num_context, "num_context", self.num_context),
            (num_target, "num_target", self.num_target),
        ):
            if _check_count(value, name) is not None and value > limit:
                raise ValueError(f"`{name}` must be at most {limit} for mask_ratio {self.mask_ratio}, got {value}.")
        self.num_context = self.num_context if num_context is None else int(num_context)
        self.num_target = self.num_target if num_target is None else int(num_target)

    def draw(self, rng: np.random.RandomState, **kwargs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Draw the masked tubes (target) and the remaining tokens (context); flat bool arrays."""
        positions = self.num_tokens // self._repeat
        plane = np.zeros(positions, dtype=bool)
        plane[rng.choice(positions, self._num_masked, replace=False)] = True
        target = np.tile(plane, self._repeat)  # row-major: axis 0 is the slowest axis
        return target, ~target, None


class FutureFrameMask(MaskGenerator):
    """Future prediction over time: predict the tokens of later frames from the earlier ones (2D+t, causal).

    The context is every token of the first ``context_frames`` indices of axis 0 (time), the target every token of
    the later ones (``num_target`` keeps a random subset of them, drawn per sample). The context never sees a
    frame at or after a target frame. Every draw has the same counts.

    Args:
        grid_size: tokens per axis, time first (2 or 3 ints).
        context_frames: token frames seen by the encoder, in ``[1, grid_size[0] - 1]``; None: half, rounded down.
        num_target: target tokens per sample (at most the later frames' tokens); None: all of them.
        seed: seed of ``self.R``.

    Example::

        >>> gen = FutureFrameMask((8, 6, 6), context_frames=4, seed=0)
        >>> context_idx, target_idx = gen(batch_size=2)  # (2, 4 * 36), (2, 4 * 36); context frames 0-3
    """

    _num_estimate_draws = 1

    def __init__(
        self,
        grid_size: Sequence[int],
        context_frames: int | None = None,
        num_target: int | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(grid_size, seed)
        frames = self.grid_size[0]
        if frames < 2:
            raise ValueError(f"`grid_size` {self.grid_size} needs >= 2 token frames on axis 0 for future prediction.")
        self.context_frames = frames // 2 if context_frames is None else int(context_frames)
        if not 1 <= self.context_frames <= frames - 1:
            raise ValueError(f"`context_frames` must lie in [1, {frames - 1}], got {context_frames!r}.")
        self._plane = self.num_tokens // frames
        later = (frames - self.context_frames) * self._plane
        if _check_count(num_target, "num_target") is not None and num_target > later:
            raise ValueError(f"`num_target` must be at most {later} (the later frames' tokens), got {num_target}.")
        self.num_context = self.context_frames * self._plane
        self.num_target = later if num_target is None else int(num_target)

    def draw(self, rng: np.random.RandomState, **kwargs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The earlier frames (context) and the later frames (target); flat bool arrays (time is the slowest axis)."""
        context = np.arange(self.num_tokens) < self.num_context
        return ~context, context, None


def _generator_from_args(
    grid_size: Sequence[int] | None, preset: str | None, generator: MaskGenerator | None, kwargs: dict[str, Any]
) -> MaskGenerator:
    if generator is not None:
        if not isinstance(generator, MaskGenerator):
            raise ValueError(f"`generator` must be a MaskGenerator, got {type(generator).__name__}.")
        if grid_size is not None or preset is not None or kwargs:
            raise ValueError("give either `generator` or `grid_size` / `preset` / generator arguments, not both.")
        return generator
    if grid_size is None:
        raise ValueError("`grid_size` is required when no `generator` is given.")
    if "seed" in kwargs:
        raise ValueError("`seed` is not an argument of the mask transforms: use `set_random_state(seed)`.")
    if preset is not None:
        return MultiBlockMaskGenerator.from_preset(preset, grid_size, **kwargs)
    return MultiBlockMaskGenerator(grid_size, **kwargs)


def _check_image_grid(img: Any, patch_size: Sequence[int] | int, grid_size: tuple[int, ...], name: str) -> None:
    """Raise a ValueError when the channel-first image ``img`` does not have the token grid ``grid_size``."""
    spatial = tuple(img.shape[1:])
    patch = (patch_size,) * len(grid_size) if isinstance(patch_size, numbers.Integral) else tuple(patch_size)
    if len(spatial) != len(grid_size) or len(patch) != len(grid_size):
        raise ValueError(
            f"`{name}` must be channel-first with {len(grid_size)} spatial axes and `patch_size` must have "
            f"{len(grid_size)} entries, got image shape {tuple(img.shape)} and patch_size {patch_size!r}."
        )
    grid = tuple(s // p for s, p in zip(spatial, patch))
    if any(s % p for s, p in zip(spatial, patch)) or grid != grid_size:
        raise ValueError(
            f"`{name}` spatial shape {spatial} with patch_size {patch} must give the token grid {grid_size} exactly, "
            f"got {grid} (remainders {tuple(s % p for s, p in zip(spatial, patch))})."
        )


class RandBlockMask(Randomizable, Transform):
    """Array transform: draw one token-grid mask ``(context_idx, target_idx)``.

    Wraps a :py:class:`MultiBlockMaskGenerator` (built from ``grid_size``, ``preset`` and generator arguments) or any
    given :py:class:`MaskGenerator` (e.g. :py:class:`RandomTubeMask`). MONAI ``Randomizable`` conventions: masks are
    drawn from ``self.R``, so :py:meth:`set_random_state` and MONAI's DataLoader worker seeding make them
    reproducible.

    Args:
        grid_size: tokens per axis, 2 or 3 ints (2D+t: time first); not with ``generator``.
        patch_size: optional patch size; when given, an image passed to ``__call__`` is checked to have this grid.
        preset: optional name in :py:data:`MASK_PRESETS`; ``kwargs`` override its settings.
        generator: a ready :py:class:`MaskGenerator` to use instead of building one.
        kwargs: other :py:class:`MultiBlockMaskGenerator` arguments (``num_blocks``, ``block_scale``, ...), not
            ``seed``.

    Returns (``__call__``):
        ``(context_idx, target_idx)``: sorted, disjoint int64 tensors ``(K_c,)``, ``(K_t,)`` (fixed K per transform).

    Example::

        >>> t = RandBlockMask(grid_size=(14, 14), preset="multiblock").set_random_state(0)
        >>> context_idx, target_idx = t()
    """

    def __init__(
        self,
        grid_size: Sequence[int] | None = None,
        patch_size: Sequence[int] | int | None = None,
        preset: str | None = None,
        generator: MaskGenerator | None = None,
        **kwargs: Any,
    ) -> None:
        self.generator = _generator_from_args(grid_size, preset, generator, kwargs)
        self.patch_size = patch_size
        self._masks: tuple[torch.Tensor, torch.Tensor] | None = None

    def randomize(self, data: Any = None) -> None:
        self._masks = self.generator.sample(self.R)

    def __call__(self, img: Any = None, randomize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            img: optional channel-first image; only used to check its token grid when ``patch_size`` is set (masks do
                not depend on the image content).
            randomize: draw a new mask (False returns the last one).
        """
        if img is not None and self.patch_size is not None:
            _check_image_grid(img, self.patch_size, self.generator.grid_size, "img")
        if randomize or self._masks is None:
            self.randomize()
        return self._masks


class RandBlockMaskd(Randomizable, MapTransform):
    """Dictionary form of :py:class:`RandBlockMask`: writes ``context_key`` (K_c,) and ``target_key`` (K_t,).

    One mask is drawn per sample (shared by all ``keys``). The outputs are int64 tensors of fixed length, so MONAI's
    default collate stacks them into ``(B, K_c)`` / ``(B, K_t)``. To use several masks per sample (V-JEPA uses a
    short-range and a long-range mask), chain transforms with different output keys.

    Args:
        keys: image keys the mask applies to. With ``patch_size`` their token grids are checked (or, without
            ``grid_size``, the grid is taken from the first key's spatial shape).
        grid_size: tokens per axis; None to derive it from the image and ``patch_size``.
        patch_size: patch size of the encoder, an int or one int per axis.
        preset: optional name in :py:data:`MASK_PRESETS`; ``kwargs`` override its settings.
        generator: a ready :py:class:`MaskGenerator` to use instead of building one.
        context_key: output key of the context indices.
        target_key: output key of the target indices.
        allow_missing_keys: do not raise if a key is missing.
        kwargs: other :py:class:`MultiBlockMaskGenerator` arguments, not ``seed``.

    Example::

        >>> t = Compose([
        ...     RandBlockMaskd("image", patch_size=(2, 16, 16), preset="short_range",
        ...                    context_key="context_short", target_key="target_short"),
        ...     RandBlockMaskd("image", patch_size=(2, 16, 16), preset="long_range",
        ...                    context_key="context_long", target_key="target_long"),
        ... ])
        >>> out = t({"image": torch.rand(1, 16, 224, 224)})  # grid (8, 14, 14)
    """

    def __init__(
        self,
        keys: KeysCollection,
        grid_size: Sequence[int] | None = None,
        patch_size: Sequence[int] | int | None = None,
        preset: str | None = None,
        generator: MaskGenerator | None = None,
        context_key: Hashable = "context_idx",
        target_key: Hashable = "target_idx",
        allow_missing_keys: bool = False,
        **kwargs: Any,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if grid_size is None and generator is None and patch_size is None:
            raise ValueError("give `grid_size`, `generator` or `patch_size` (to derive the grid from the image).")
        if context_key == target_key:
            raise ValueError(f"`context_key` and `target_key` must differ, got {context_key!r} twice.")
        self.patch_size = patch_size
        self.context_key, self.target_key = context_key, target_key
        self._preset, self._kwargs = preset, kwargs
        self._generators: dict[tuple[int, ...], MaskGenerator] = {}
        self.generator: MaskGenerator | None = None
        if grid_size is not None or generator is not None:
            self.generator = _generator_from_args(grid_size, preset, generator, kwargs)

    def _generator_for(self, img: Any) -> MaskGenerator:
        if self.generator is not None:
            return self.generator
        patch = self.patch_size
        spatial = tuple(img.shape[1:])
        patch = (patch,) * len(spatial) if isinstance(patch, numbers.Integral) else tuple(patch)
        grid = tuple(s // p for s, p in zip(spatial, patch))
        if grid not in self._generators:
            self._generators[grid] = _generator_from_args(grid, self._preset, None, dict(self._kwargs))
        return self._generators[grid]

    def randomize(self, data: Any = None) -> None:
        pass  # masks are drawn from self.R in __call__, once the grid is known

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        images = [d[key] for key in self.key_iterator(d)]
        generator = self._generator_for(images[0]) if images else self.generator
        if generator is None:
            raise ValueError(f"none of the keys {self.keys} is present: cannot derive the token grid.")
        if self.patch_size is not None:
            for key, img in zip(self.key_iterator(d), images):
                _check_image_grid(img, self.patch_size, generator.grid_size, f"data[{key!r}]")
        d[self.context_key], d[self.target_key] = generator.sample(self.R)
        return d
