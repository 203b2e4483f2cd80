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
"""Domain-shift protocols for segmentation networks.

* :func:`scanner_shift_curve`: a trained network on test volumes under controlled acquisition shifts of increasing
  strength (MONAI's ``RandBiasField``, ``GibbsNoise``, ``AdjustContrast``, ``Resize``, ``RandGaussianNoise``), seeded
  per volume so that every strength sees the same field / noise pattern, scaled: Dice (and HD95) against strength per
  shift type, optionally with a harmonisation transform between the shift and the network's preprocessing.
* :func:`cross_site_sweep`: train on site A, test on site B with 0, 1, 2, ... site-B labelled volumes (the network
  trained on A, then fine-tuned on the site-B labels); continued self-supervised pretraining on unlabelled site-B
  images enters as one more network factory.
* :func:`format_shift_report`, :func:`plot_shift_curves`, :func:`write_shift_report`: a Markdown table (mean ± std
  over seeds) and a PNG plot of the curves.
* :func:`format_cross_site_report`, :func:`plot_cross_site`: the same for :func:`cross_site_sweep` records (site-B
  Dice against the number of site-B labels, one row / line per method, differences paired by seed).
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from monai.transforms import AdjustContrast, GibbsNoise, RandBiasField, RandGaussianNoise, Resize
from monai.utils import convert_to_tensor, look_up_option, optional_import

from monai_jepa.evaluation.report import json_safe
from monai_jepa.evaluation.segmentation import evaluate_segmentation, fine_tune_segmentation
from monai_jepa.utils.fileio import atomic_write, atomic_write_text
from monai_jepa.utils.module import require_package

Figure, _ = optional_import("matplotlib.figure", name="Figure")
FigureCanvasAgg, _ = optional_import("matplotlib.backends.backend_agg", name="FigureCanvasAgg")

__all__ = [
    "DEFAULT_SHIFT_STRENGTHS",
    "SHIFT_MAXIMA",
    "SHIFT_TYPES",
    "apply_shift",
    "cross_site_sweep",
    "format_cross_site_report",
    "format_shift_report",
    "plot_cross_site",
    "plot_shift_curves",
    "scanner_shift_curve",
    "shift_parameter",
    "write_shift_report",
]

SHIFT_TYPES = ("bias_field", "gibbs", "gamma", "resolution", "noise")
DEFAULT_SHIFT_STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
SHIFT_MAXIMA = {"bias_field": 0.15, "gibbs": 0.8, "gamma": 2.5, "resolution": 4.0, "noise": 0.3}
"""The physical parameter at strength 1: bias-field polynomial coefficients drawn in ``[-0.15, 0.15]`` (degree 3,
multiplicative ``exp`` field); Gibbs ``alpha`` 0.8 (k-space truncation); gamma 2.5; resolution factor 4 (down- then
up-sampling); Gaussian noise of 0.3 x the image's foreground standard deviation."""
_UNITS = {
    "bias_field": "max |coefficient|",
    "gibbs": "alpha",
    "gamma": "gamma",
    "resolution": "factor",
    "noise": "sigma / image std",
}


def shift_parameter(kind: str, strength: float, maximum: float | None = None) -> float:
    """The physical parameter of a shift of ``strength`` in [0, 1] (0: the identity): linear in strength for the bias
    field coefficients, Gibbs alpha and noise sigma; ``maximum ** strength`` for gamma; ``1 + strength * (maximum - 1)``
    for the resolution factor."""
    kind = look_up_option(kind, SHIFT_TYPES)
    if not 0.0 <= float(strength) <= 1.0:
        raise ValueError(f"shift strength must be in [0, 1], got {strength} for {kind!r}.")
    top = float(SHIFT_MAXIMA[kind] if maximum is None else maximum)
    if kind == "gamma":
        if top <= 0:
            raise ValueError(f"the maximum gamma must be > 0, got {top}.")
        return top**strength
    if kind == "resolution":
        if top < 1:
            raise ValueError(f"the maximum resolution factor must be >= 1, got {top}.")
        return 1.0 + strength * (top - 1.0)
    if top < 0 or (kind == "gibbs" and top > 1):
        raise ValueError(f"the maximum of {kind!r} must be {'in [0, 1]' if kind == 'gibbs' else '>= 0'}, got {top}.")
    return strength * top


def apply_shift(
    img: torch.Tensor,
    kind: str,
    strength: float,
    seed: int = 0,
    maximum: float | None = None,
    resolution_axes: Sequence[int] | None = (-1,),
) -> torch.Tensor:
    """One acquisition shift of ``strength`` in [0, 1] applied to a channel-first image, deterministically.

    Strength 0 returns the image unchanged. The random shifts (bias field, noise) draw their pattern from ``seed``, so
    that a volume sees the same pattern at every strength, scaled by it.

    Args:
        img: image ``(C, *spatial)``, 2D or 3D, in the intensities the scanner would give (before normalisation).
        kind: one of ``"bias_field"``, ``"gibbs"``, ``"gamma"``, ``"resolution"``, ``"noise"``.
        strength: in [0, 1]; see :func:`shift_parameter` and :data:`SHIFT_MAXIMA` for the parameter it gives.
        seed: seed of the bias field / noise pattern.
        maximum: the parameter at strength 1 (default :data:`SHIFT_MAXIMA`).
        resolution_axes: spatial axes (0-based, negative from the end) that lose resolution (default the last: thicker
            slices); None: all spatial axes.

    Returns:
        the shifted image, a float tensor of the input's shape.
    """
    param = shift_parameter(kind, strength, maximum)
    x = convert_to_tensor(img, track_meta=False).float()
    if x.ndim not in (3, 4):
        raise ValueError(f"expected a channel-first 2D or 3D image (C, H, W[, D]), got shape {tuple(x.shape)}.")
    if strength == 0:
        return x.clone()
    if kind == "bias_field":
        t = RandBiasField(degree=3, coeff_range=(-param, param), prob=1.0)
        t.set_random_state(seed=seed)
        return convert_to_tensor(t(x), track_meta=False).float()
    if kind == "gibbs":
        return convert_to_tensor(GibbsNoise(alpha=param)(x), track_meta=False).float()
    if kind == "gamma":
        return convert_to_tensor(AdjustContrast(gamma=param)(x), track_meta=False).float()
    if kind == "noise":
        nonzero = x[x != 0]
        ref = float(nonzero.std()) if nonzero.numel() > 1 else 0.0
        ref = ref if ref > 0 else float(x.abs().mean())  # a constant image: relative to its intensity
        t = RandGaussianNoise(prob=1.0, mean=0.0, std=param * ref, sample_std=False)
        t.set_random_state(seed=seed)
        return convert_to_tensor(t(x), track_meta=False).float()
    spatial = list(x.shape[1:])
    axes = range(len(spatial)) if resolution_axes is None else [a % len(spatial) for a in resolution_axes]
    low = list(spatial)
    for a in axes:
        low[a] = max(1, int(round(spatial[a] / param)))
    up_mode = "bilinear" if len(spatial) == 2 else "trilinear"
    down = Resize(low, mode="area")(x)
    return convert_to_tensor(Resize(spatial, mode=up_mode, align_corners=False)(down), track_meta=False).float()


def _evaluate(
    network: nn.Module,
    items: Sequence[Mapping[str, Any]],
    num_classes: int,
    image_fn: Callable[[torch.Tensor, int], torch.Tensor],
    evaluate_kwargs: Mapping[str, Any],
) -> dict[str, Any]:
    shifted = [{"image": image_fn(torch.as_tensor(it["image"]), i), "label": it["label"]} for i, it in enumerate(items)]
    return evaluate_segmentation(network, shifted, num_classes, **dict(evaluate_kwargs))


def scanner_shift_curve(
    network: nn.Module,
    items: Sequence[Mapping[str, Any]],
    num_classes: int,
    shifts: Sequence[str] = SHIFT_TYPES,
    strengths: Sequence[float] = DEFAULT_SHIFT_STRENGTHS,
    preprocessing: Callable[[torch.Tensor], torch.Tensor] | None = None,
    harmonization: Callable[[torch.Tensor], torch.Tensor] | None = None,
    seed: int = 0,
    maxima: Mapping[str, float] | None = None,
    resolution_axes: Sequence[int] | None = (-1,),
    evaluate_kwargs: Mapping[str, Any] | None = None,
    log: Callable[[str], None] | None = print,
) -> list[dict[str, Any]]:
    """Segmentation quality of a trained network against the strength of controlled acquisition shifts.

    For each shift type and strength, every test image goes through ``apply_shift`` (volume ``i`` seeded with
    ``seed + i``), then ``harmonization`` (if any), then ``preprocessing`` (the normalisation / padding the network
    was trained with), and the network is scored with :func:`evaluate_segmentation`. Strength 0 is the identity: it is
    evaluated once and reported under every shift type.

    Args:
        network: trained network, ``(B, C, *S)`` to logits ``(B, num_classes, *S)``.
        items: test items ``{"image": (C, *S0) raw intensities, "label": (1, *S) label map}``; ``S0`` may differ
            from ``S`` when ``preprocessing`` pads or crops.
        num_classes: number of classes including background.
        shifts: shift types (see :data:`SHIFT_TYPES`).
        strengths: strengths in [0, 1].
        preprocessing: image transform applied after the shift and the harmonisation (the network's input pipeline).
        harmonization: image transform applied right after the shift (e.g. a fitted
            :class:`~monai_jepa.transforms.HistogramStandardize`).
        seed: base seed of the random shifts.
        maxima: ``{shift: parameter at strength 1}`` overriding :data:`SHIFT_MAXIMA`.
        resolution_axes: see :func:`apply_shift`.
        evaluate_kwargs: extra arguments of :func:`evaluate_segmentation` (device, class names, spacing, ...).
        log: called with one line per evaluation (None: silent).

    Returns:
        one record per (shift, strength): ``{"shift", "strength", "parameter", "parameter_name",
        **evaluate_segmentation results}``, in the order of ``shifts`` then ``strengths``.
    """
    if len(items) == 0:
        raise ValueError("items is empty; expected test items {'image', 'label'}.")
    shifts = [look_up_option(s, SHIFT_TYPES) for s in shifts]
    if not shifts or not strengths:
        raise ValueError(f"need at least one shift and one strength, got shifts={shifts}, strengths={strengths}.")
    for s in strengths:
        if not 0.0 <= float(s) <= 1.0:
            raise ValueError(f"shift strengths must be in [0, 1], got {s} in {list(strengths)}.")
    maxima = dict(maxima or {})
    unknown = set(maxima) - set(SHIFT_TYPES)
    if unknown:
        raise ValueError(f"maxima names unknown shift(s) {sorted(unknown)}; expected names from {SHIFT_TYPES}.")

    def pipeline(kind: str, strength: float) -> Callable[[torch.Tensor, int], torch.Tensor]:
        def run(img: torch.Tensor, i: int) -> torch.Tensor:
            x = apply_shift(img, kind, strength, seed + i, maxima.get(kind), resolution_axes)
            if harmonization is not None:
                x = harmonization(x)
            if preprocessing is not None:
                x = preprocessing(x)
            return convert_to_tensor(x, track_meta=False).float()

        return run

    records, clean = [], None
    for kind in shifts:
        for strength in strengths:
            strength = float(strength)
            if strength == 0 and clean is not None:
                result = clean
            else:
                result = _evaluate(network, items, num_classes, pipeline(kind, strength), evaluate_kwargs or {})
                clean = result if strength == 0 else clean
            param = shift_parameter(kind, strength, maxima.get(kind))
            records.append({"shift": kind, "strength": strength, "parameter": param, "parameter_name": _UNITS[kind],
                            **copy.deepcopy(result)})  # fmt: skip
            if log is not None:
                log(f"{kind:>10s} strength={strength:.2f} ({_UNITS[kind]} {param:.3g}) dice={result['dice']:.4f}")
    return records


def cross_site_sweep(
    network_factories: Mapping[str, Callable[[], nn.Module]],
    site_a_items: Sequence[Mapping[str, Any]],
    site_b_pool: Sequence[Mapping[str, Any]],
    site_b_test: Sequence[Mapping[str, Any]],
    site_b_counts: Sequence[int],
    num_classes: int,
    steps_a: int,
    steps_b: int,
    seed: int = 0,
    site_a_test: Sequence[Mapping[str, Any]] | None = None,
    evaluate_kwargs: Mapping[str, Any] | None = None,
    log: Callable[[str], None] | None = print,
    site_b_share: float | None = None,
    **train_kwargs: Any,
) -> list[dict[str, Any]]:
    """Train on site A, test on site B, with 0 / a few site-B labels.

    Each network is fine-tuned on all of ``site_a_items`` for ``steps_a`` optimiser steps (once), then, for each
    ``n`` of ``site_b_counts``, a copy is fine-tuned on the first ``n`` volumes of ``site_b_pool`` for ``steps_b``
    steps (``n = 0``: no site-B training) and tested on ``site_b_test`` (and on ``site_a_test`` when given, to see
    what the adaptation costs on site A). Continued self-supervised pretraining on unlabelled site-B images is one
    more entry of ``network_factories`` (a factory returning the network initialised from that checkpoint).

    With ``site_b_share`` the site-B step trains on the site-A items together with the ``n`` site-B items, repeated so
    that they make about that share of the pool (e.g. 0.5): a few site-B labels alone are learnt by heart and the
    network forgets site A (and often site B's other patients) within a few hundred steps; None trains on the site-B
    items alone.

    Args:
        network_factories: ``{method: factory}``; each factory is called after ``torch.manual_seed(seed)``.
        site_a_items: labelled site-A training items ``{"image", "label"}``.
        site_b_pool: labelled site-B items from which the first ``n`` are used (disjoint from ``site_b_test``).
        site_b_test: labelled site-B test items.
        site_b_counts: numbers of site-B labelled volumes (0 allowed).
        num_classes: number of classes including background.
        steps_a: optimiser steps on site A.
        steps_b: optimiser steps on the site-B labels.
        seed: seed of the initialisation, data order and flips.
        site_a_test: optional site-A test items.
        evaluate_kwargs: extra arguments of :func:`evaluate_segmentation`.
        log: called with one line per result (None: silent).
        site_b_share: share of site-B items in the pool of the site-B step, in (0, 1); None: site-B items only.
        train_kwargs: extra arguments of :func:`fine_tune_segmentation` (batch size, learning rate, flips, ...).

    Returns:
        one record per (method, n): ``{"method", "site_b_labels", "steps_a", "steps_b", "seed", "train_seconds",
        **evaluate_segmentation results on site B, "site_a": results on site A or None}``.
    """
    if not network_factories:
        raise ValueError("network_factories is empty.")
    counts = [int(n) for n in site_b_counts]
    if not counts or any(n < 0 or n > len(site_b_pool) for n in counts):
        raise ValueError(f"site_b_counts must be in [0, {len(site_b_pool)}] (the site-B pool size), got {counts}.")
    if steps_a < 1 or (steps_b < 1 and any(counts)):
        raise ValueError(
            f"steps_a must be >= 1 and steps_b >= 1 when site-B labels are used, got {steps_a}, {steps_b}."
        )
    if site_b_share is not None and not 0.0 < float(site_b_share) < 1.0:
        raise ValueError(f"site_b_share must be in (0, 1) or None, got {site_b_share}.")
    ids_pool = {it.get("id") for it in site_b_pool} - {None}
    overlap = ids_pool & ({it.get("id") for it in site_b_test} - {None})
    if overlap:
        raise ValueError(
            f"site_b_pool and site_b_test share item id(s) {sorted(overlap)[:5]}: the test must be held out."
        )
    ekw = dict(evaluate_kwargs or {})
    records = []
    for name, factory in network_factories.items():
        torch.manual_seed(seed)
        network = factory()
        trained_a = fine_tune_segmentation(network, site_a_items, num_classes, steps_a, seed=seed, **train_kwargs)
        state = copy.deepcopy(network.state_dict())
        for n in counts:
            network.load_state_dict(state)
            seconds = trained_a["seconds"]
            if n > 0:
                pool = list(site_b_pool[:n])
                if site_b_share is not None:
                    share = float(site_b_share)
                    repeats = max(1, round(share * len(site_a_items) / ((1.0 - share) * n)))
                    pool = list(site_a_items) + pool * repeats
                seconds += fine_tune_segmentation(network, pool, num_classes, steps_b, seed=seed, **train_kwargs)[
                    "seconds"
                ]
            result = evaluate_segmentation(network, site_b_test, num_classes, **ekw)
            on_a = evaluate_segmentation(network, site_a_test, num_classes, **ekw) if site_a_test else None
            records.append({"method": name, "site_b_labels": n, "steps_a": steps_a, "steps_b": steps_b if n else 0,
                            "site_b_share": site_b_share if n else None, "seed": seed, "train_seconds": seconds,
                            **result, "site_a": on_a})  # fmt: skip
            if log is not None:
                extra = "" if on_a is None else f" (site A {on_a['dice']:.4f})"
                log(f"{name:>20s} site-B labels={n} dice on site B={result['dice']:.4f}{extra}")
    return records


def _group(records: Sequence[Mapping[str, Any]], by: Sequence[str]) -> dict[tuple, dict[tuple, list[float]]]:
    """``{group key: {(shift, strength): [dice per seed / record]}}``."""
    out: dict[tuple, dict[tuple, list[float]]] = {}
    for r in records:
        key = tuple(str(r.get(k)) for k in by)
        out.setdefault(key, {}).setdefault((r["shift"], float(r["strength"])), []).append(float(r["dice"]))
    return out


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else float("nan")


def _cell(values: Sequence[float]) -> str:
    """``mean ± std (count)`` of a table cell (no ± for a single value)."""
    m, sd = _mean_std(values)
    return f"{m:.3f}" + ("" if math.isnan(sd) else f" ± {sd:.3f}") + f" ({len(values)})"


def _errorbar(ax: Any, xs: Sequence[float], values: Sequence[Sequence[float]], label: str) -> None:
    """One line of mean ± std (error bars; none for a single value) of ``values[i]`` at ``xs[i]``."""
    stats = [_mean_std(v) for v in values]
    err = [0.0 if math.isnan(sd) else sd for _, sd in stats]
    ax.errorbar(xs, [m for m, _ in stats], yerr=err, marker="o", markersize=3, capsize=2, label=label)


def format_shift_report(
    records: Sequence[Mapping[str, Any]], by: Sequence[str] = ("method",), title: str = "Scanner-shift stress curve"
) -> str:
    """A Markdown report of :func:`scanner_shift_curve` records: one table per shift type (rows: the groups named by
    ``by``, e.g. method and harmonisation; columns: strengths; cells: mean Dice ± std over the records of the group,
    e.g. seeds, with their count), then the drop from strength 0 to the strongest shift.

    Args:
        records: shift-curve records, each with ``shift``, ``strength``, ``parameter``, ``dice`` and the ``by`` keys.
        by: record keys naming a curve.
        title: heading.

    Returns:
        the Markdown text.
    """
    if not records:
        raise ValueError("no records to report.")
    groups = _group(records, by)
    shifts = list(dict.fromkeys(r["shift"] for r in records))
    params = {(r["shift"], float(r["strength"])): r["parameter"] for r in records}
    lines = [f"# {title}", "", "Mean Dice over foreground classes and test volumes; ± the standard deviation over "
             "repeats (seeds), their number in brackets. Strength 0 is the unshifted test set.", ""]  # fmt: skip
    head = " | ".join(by)
    for kind in shifts:
        strengths = sorted({s for (k, s) in params if k == kind})
        lines += [f"## {kind} ({_UNITS.get(kind, 'parameter')})", ""]
        lines.append(f"| {head} | " + " | ".join(f"{s:g} ({params[(kind, s)]:.3g})" for s in strengths) + " |")
        lines.append("|" + "---|" * len(by) + "---:|" * len(strengths))
        for key, cells in groups.items():
            row = []
            for s in strengths:
                if (kind, s) not in cells:
                    row.append("")
                    continue
                row.append(_cell(cells[(kind, s)]))
            lines.append("| " + " | ".join(key) + " | " + " | ".join(row) + " |")
        lines.append("")
    lines += ["## Drop at full strength (Dice at strength 0 minus Dice at the strongest shift)", "",
              f"| {head} | " + " | ".join(shifts) + " |", "|" + "---|" * len(by) + "---:|" * len(shifts)]  # fmt: skip
    for key, cells in groups.items():
        row = []
        for kind in shifts:
            strengths = sorted(s for (k, s) in cells if k == kind)
            if len(strengths) < 2 or strengths[0] != 0:
                row.append("")
                continue
            row.append(f"{_mean_std(cells[(kind, 0.0)])[0] - _mean_std(cells[(kind, strengths[-1])])[0]:+.3f}")
        lines.append("| " + " | ".join(key) + " | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def plot_shift_curves(
    records: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    by: Sequence[str] = ("method",),
    title: str = "Scanner-shift stress curve",
) -> Path:
    """Plot Dice against shift strength, one panel per shift type (one shared Dice axis) and one line per group (mean ±
    std over the group's records as error bars); saved as PNG atomically (Agg canvas, no global matplotlib state
    changed).

    Returns:
        the path written.
    """
    require_package("matplotlib", "monai_jepa.evaluation.plot_shift_curves", "plots")
    if not records:
        raise ValueError("no records to plot.")
    groups = _group(records, by)
    shifts = list(dict.fromkeys(r["shift"] for r in records))
    fig = Figure(figsize=(3.2 * len(shifts) + 1.5, 3.4), dpi=120)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, len(shifts), 1)]
    axes += [fig.add_subplot(1, len(shifts), i + 1, sharey=axes[0]) for i in range(1, len(shifts))]  # one Dice scale
    for ax, kind in zip(axes, shifts):
        for key, cells in groups.items():
            xs = sorted(s for (k, s) in cells if k == kind)
            _errorbar(ax, xs, [cells[(kind, s)] for s in xs], " / ".join(key))
        ax.set_title(kind, fontsize=9)
        ax.set_xlabel("strength")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Dice")
    axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    return path


def write_shift_report(
    records: Sequence[Mapping[str, Any]],
    output_dir: str | os.PathLike,
    by: Sequence[str] = ("method",),
    title: str = "Scanner-shift stress curve",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``shift_metrics.json`` (``{"records", **extra}``, per-case Dice dropped, NaN as null),
    ``shift_report.md`` and ``shift_curves.png`` into ``output_dir``, each atomically.

    Returns:
        ``{"metrics": path, "report": path, "plot": path}``.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    slim = [{k: v for k, v in r.items() if k != "dice_per_case"} for r in records]
    payload = json_safe({"records": slim, **dict(extra or {})})
    paths = {"metrics": out / "shift_metrics.json", "report": out / "shift_report.md"}
    atomic_write_text(paths["metrics"], json.dumps(payload, indent=4, allow_nan=False) + "\n")
    atomic_write_text(paths["report"], format_shift_report(slim, by, title))
    paths["plot"] = plot_shift_curves(slim, out / "shift_curves.png", by, title)
    return paths


def _cross_site_cells(records: Sequence[Mapping[str, Any]], count_key: str) -> dict[str, dict[int, dict[int, dict]]]:
    """``{method: {count: {seed: record}}}``; a repeated (method, count, seed) is an error."""
    cells: dict[str, dict[int, dict[int, dict]]] = {}
    for r in records:
        per_seed = cells.setdefault(str(r["method"]), {}).setdefault(int(r[count_key]), {})
        if int(r["seed"]) in per_seed:
            raise ValueError(f"two records for method {r['method']!r}, {count_key}={r[count_key]}, seed {r['seed']}.")
        per_seed[int(r["seed"])] = dict(r)
    return cells


def format_cross_site_report(
    records: Sequence[Mapping[str, Any]],
    reference: str | None = None,
    count_key: str = "site_b_labels",
    title: str = "Cross-site validation",
) -> str:
    """A Markdown report of :func:`cross_site_sweep` records pooled over seeds.

    Table 1: site-B Dice per method (rows) and number of site-B labels (columns), mean ± std over seeds (their
    number in brackets), and the site-A Dice after site-A training (0 site-B labels) when recorded. Table 2 (when
    ``reference`` is given): each method minus ``reference``, paired by seed, mean and (min..max) over seeds.

    Args:
        records: sweep records with ``method``, ``seed``, ``dice``, ``count_key`` and optionally ``site_a``.
        reference: the method the others are compared with (e.g. ``"scratch"``).
        count_key: record key of the site-B label count (e.g. ``"site_b_patients"`` when counted in patients).
        title: heading.

    Returns:
        the Markdown text.
    """
    if not records:
        raise ValueError("no records to report.")
    cells = _cross_site_cells(records, count_key)
    if reference is not None and reference not in cells:
        raise ValueError(f"reference method {reference!r} is not among the records' methods {sorted(cells)}.")
    counts = sorted({n for per in cells.values() for n in per})

    head = "| method | " + " | ".join(str(n) for n in counts) + " |"
    lines = [f"# {title}", "", f"Site-B Dice by number of site-B labels ({count_key}); mean ± std over seeds, their "
             "number in brackets. The last column is the site-A test Dice after site-A training.", "",
             head + " site A |", "|---|" + "---:|" * (len(counts) + 1)]  # fmt: skip
    for method, per in cells.items():
        row = [_cell([r["dice"] for r in per[n].values()]) if n in per else "" for n in counts]
        on_a = [r["site_a"]["dice"] for r in per.get(min(per), {}).values() if r.get("site_a")]
        lines.append(f"| {method} | " + " | ".join(row) + f" | {_cell(on_a) if on_a else ''} |")
    if reference is not None:
        lines += ["", f"Difference to {reference}, paired by seed: mean (min..max).", "", head,
                  "|---|" + "---:|" * len(counts)]  # fmt: skip
        for method, per in cells.items():
            if method == reference:
                continue
            row = []
            for n in counts:
                seeds = sorted(set(per.get(n, {})) & set(cells[reference].get(n, {})))
                d = np.array([per[n][s]["dice"] - cells[reference][n][s]["dice"] for s in seeds])
                row.append(f"{d.mean():+.3f} ({d.min():+.3f}..{d.max():+.3f})" if d.size else "")
            lines.append(f"| {method} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def plot_cross_site(
    records: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    count_key: str = "site_b_labels",
    title: str = "Cross-site validation",
) -> Path:
    """Plot site-B Dice against the number of site-B labels, one line per method (mean ± std over seeds); saved as
    PNG atomically (Agg canvas, no global matplotlib state changed).

    Returns:
        the path written.
    """
    require_package("matplotlib", "monai_jepa.evaluation.plot_cross_site", "plots")
    if not records:
        raise ValueError("no records to plot.")
    cells = _cross_site_cells(records, count_key)
    fig = Figure(figsize=(5.5, 3.6), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for method, per in cells.items():
        xs = sorted(per)
        _errorbar(ax, xs, [[r["dice"] for r in per[n].values()] for n in xs], method)
    ax.set_xticks(sorted({n for per in cells.values() for n in per}))
    ax.set_xlabel(count_key.replace("_", " "))
    ax.set_ylabel("Dice on site B")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    return path
