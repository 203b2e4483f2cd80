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
"""Start-up probe of the training-step settings: autocast precision and memory format.

Which of bf16 autocast and ``channels_last`` speeds a training step up depends on the hardware: on a CPU without
bf16 matrix units, bf16 with ``channels_last`` ran a 2D ResNet encoder 1.9x slower than bf16 in the default NCHW
layout, while on another CPU ``channels_last`` helped. :func:`choose_step_settings` times a few real training steps
under each candidate setting and returns the fastest; :class:`~monai_jepa.engines.LeJEPATrainer` runs it on the first
batch when given ``amp="auto"`` and / or ``channels_last="auto"``.

A setting is a dict ``{"amp": bool, "amp_dtype": "bfloat16" | "float16" | None, "channels_last": bool}``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

__all__ = ["AUTO", "DEFAULT_CANDIDATES", "choose_step_settings", "settings_label", "step_candidates"]

AUTO = "auto"
"""The value of ``amp`` / ``channels_last`` that asks the trainers to probe the setting at start-up."""

_HALF_DTYPES = ("bfloat16", "float16")
_SHORT = {None: "fp32", "bfloat16": "bf16", "float16": "fp16"}


def _setting(amp_dtype: str | None, channels_last: bool) -> dict[str, Any]:
    return {"amp": amp_dtype is not None, "amp_dtype": amp_dtype, "channels_last": bool(channels_last)}


DEFAULT_CANDIDATES: tuple[dict[str, Any], ...] = tuple(
    _setting(dtype, cl) for dtype in (None, "bfloat16") for cl in (False, True)
)
"""The CPU candidates: fp32 and bf16 autocast, each with the contiguous and the ``channels_last`` layout."""


def settings_label(settings: Mapping[str, Any]) -> str:
    """A short name of a setting, e.g. ``"bf16+channels_last"`` or ``"fp32+contiguous"``."""
    dtype = settings.get("amp_dtype") if settings.get("amp") else None
    return f"{_SHORT.get(dtype, str(dtype))}+{'channels_last' if settings.get('channels_last') else 'contiguous'}"


def step_candidates(
    device: str | torch.device,
    amp: bool | str = AUTO,
    channels_last: bool | str = AUTO,
    amp_dtype: str = "bfloat16",
) -> list[dict[str, Any]]:
    """The settings to probe for the trainer arguments ``amp`` and ``channels_last``.

    An argument that is ``True`` or ``False`` is kept fixed; ``"auto"`` tries both of its values. With ``amp="auto"``
    the precisions tried are fp32 and ``amp_dtype`` autocast on the CPU, and fp32, bf16 (when the GPU supports it) and
    fp16 on CUDA. Candidates are ordered fp32 before half precision and contiguous before ``channels_last``, so that
    ties go to the simpler setting.

    Args:
        device: the training device.
        amp: ``True`` (autocast with ``amp_dtype``), ``False`` (fp32) or ``"auto"``.
        channels_last: ``True``, ``False`` or ``"auto"``.
        amp_dtype: the autocast dtype for ``amp=True``, and the half precision tried on the CPU with ``amp="auto"``.

    Returns:
        a list of settings (dicts with ``amp``, ``amp_dtype`` and ``channels_last``).

    Raises:
        ValueError: when ``amp`` / ``channels_last`` are neither booleans nor ``"auto"``, or ``amp_dtype`` is unknown.
    """
    for name, value in (("amp", amp), ("channels_last", channels_last)):
        if not (isinstance(value, bool) or value == AUTO):
            raise ValueError(f"{name} must be True, False or '{AUTO}', got {value!r}.")
    if amp_dtype not in _HALF_DTYPES:
        raise ValueError(f"amp_dtype must be one of {_HALF_DTYPES}, got {amp_dtype!r}.")
    device = torch.device(device)
    if amp == AUTO:
        if device.type == "cuda":
            halves = [d for d in _HALF_DTYPES if d != "bfloat16" or torch.cuda.is_bf16_supported()]
        else:
            halves = [amp_dtype]
        dtypes: list[str | None] = [None, *halves]
    else:
        dtypes = [amp_dtype if amp else None]
    layouts = [False, True] if channels_last == AUTO else [bool(channels_last)]
    return [_setting(d, cl) for d in dtypes for cl in layouts]


def _median(values: Sequence[float]) -> float:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def choose_step_settings(
    step_fn: Callable[[Mapping[str, Any]], Any],
    candidates: Sequence[Mapping[str, Any]] = DEFAULT_CANDIDATES,
    warmup: int = 1,
    repeats: int = 3,
    timer: Callable[[], float] = time.perf_counter,
    logger: logging.Logger | None = None,
    sync: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """Time ``step_fn`` under every candidate setting and return the fastest.

    Each candidate in turn runs ``warmup`` untimed steps (one-time costs: kernel selection, memory-format conversion,
    allocator warm-up), then ``repeats`` timed steps; its time is the median of those. The fastest median wins; ties
    go to the earlier candidate. A candidate whose step raises (e.g. an autocast dtype the device does not support)
    is reported as failed and skipped. All timings and the choice are logged in one line at INFO level.

    Args:
        step_fn: runs one training step (forward + backward) under the setting it is given. It should leave no trace
            that matters (the trainers restore the weights, gradients and RNG states after the probe).
        candidates: the settings to try, e.g. from :func:`step_candidates`; default :data:`DEFAULT_CANDIDATES`.
        warmup: untimed steps per candidate (>= 0).
        repeats: timed steps per candidate (>= 1).
        timer: the clock, in seconds (default ``time.perf_counter``; tests inject a fake one).
        logger: where the summary line goes (default this module's logger).
        sync: called before reading the clock (e.g. ``torch.cuda.synchronize``), so that asynchronous device work
            is timed.

    Returns:
        the chosen setting (``amp``, ``amp_dtype``, ``channels_last``) with ``label`` (its name), ``seconds`` (the
        median step time of every candidate that ran, by label), ``failed`` (label -> error, for those that did not),
        ``warmup`` and ``repeats``.

    Raises:
        ValueError: when ``candidates`` is empty or ``warmup`` / ``repeats`` are out of range.
        RuntimeError: when every candidate failed (chained to the last error).

    Example::

        >>> def step(settings):
        ...     x = batch.contiguous(memory_format=torch.channels_last) if settings["channels_last"] else batch
        ...     with torch.autocast("cpu", dtype=torch.bfloat16, enabled=settings["amp"]):
        ...         loss = model(x).float().mean()
        ...     loss.backward()
        >>> best = choose_step_settings(step)
        >>> best["label"], best["seconds"]  # e.g. "bf16+contiguous", {"fp32+contiguous": 0.21, ...}
    """
    candidates = [dict(c) for c in candidates]
    if not candidates:
        raise ValueError("candidates must hold at least one setting.")
    if not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative integer, got {warmup!r}.")
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}.")
    logger = logging.getLogger(__name__) if logger is None else logger
    sync = (lambda: None) if sync is None else sync

    seconds: dict[str, float] = {}
    failed: dict[str, str] = {}
    best: tuple[float, dict[str, Any]] | None = None
    last_error: BaseException | None = None
    for cand in candidates:
        label = settings_label(cand)
        try:
            for _ in range(warmup):
                step_fn(cand)
            times = []
            for _ in range(repeats):
                sync()
                start = timer()
                step_fn(cand)
                sync()
                times.append(timer() - start)
        except Exception as e:  # a setting the device or the model cannot run: skip it
            failed[label] = f"{type(e).__name__}: {e}"
            last_error = e
            continue
        seconds[label] = _median(times)
        if best is None or seconds[label] < best[0]:
            best = (seconds[label], cand)

    parts = [f"{k} {v:.4g} s" for k, v in seconds.items()] + [f"{k} failed ({v})" for k, v in failed.items()]
    head = f"Step settings probe (median of {repeats} timed steps after {warmup} warm-up, per setting): "
    if best is None:
        logger.warning(head + ", ".join(parts) + " -> no setting ran.")
        raise RuntimeError(f"every candidate step setting failed: {failed}") from last_error
    chosen = settings_label(best[1])
    first = next(iter(seconds))
    gain = f" ({seconds[first] / best[0]:.2f}x vs {first})" if chosen != first and best[0] > 0 else ""
    logger.info(head + ", ".join(parts) + f" -> chosen: {chosen}{gain}.")
    return {
        **_setting(best[1].get("amp_dtype") if best[1].get("amp") else None, best[1].get("channels_last", False)),
        "label": chosen,
        "seconds": seconds,
        "failed": failed,
        "warmup": warmup,
        "repeats": repeats,
    }
