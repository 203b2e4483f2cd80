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
"""Embedding maps: 2D projections (PCA, UMAP) of per-image or per-patient embeddings, coloured by label or site."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from monai.utils import look_up_option, optional_import

from monai_jepa.utils.fileio import atomic_write
from monai_jepa.utils.module import require_package

__all__ = ["embedding_map_from_csv", "embedding_projection", "plot_embedding_map"]

Figure, _ = optional_import("matplotlib.figure", name="Figure")
FigureCanvasAgg, _ = optional_import("matplotlib.backends.backend_agg", name="FigureCanvasAgg")

SUPPORTED_PROJECTIONS = ("pca", "umap")


def embedding_projection(
    features: np.ndarray, method: str = "pca", seed: int = 0, n_neighbors: int = 15
) -> tuple[np.ndarray, dict]:
    """Project embeddings ``(N, D)`` to 2D for a map.

    ``"pca"``: the first two principal components (features centred, not scaled), signs fixed so the largest
    loading of each axis is positive (the same input always gives the same picture). ``"umap"``: UMAP (optional
    ``umap-learn``) with ``random_state=seed`` on the standardised features.

    Args:
        features: ``(N, D)`` array, N >= 3, finite.
        method: ``"pca"`` or ``"umap"``.
        seed: UMAP random state.
        n_neighbors: UMAP neighbourhood size (capped at N - 1).

    Returns:
        ``(coords (N, 2), info)``; for PCA ``info["explained_variance_ratio"]`` holds the two axes' shares.
    """
    method = look_up_option(method, SUPPORTED_PROJECTIONS)
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 3 or not np.isfinite(x).all():
        raise ValueError(f"features must be a finite (N >= 3, D) array, got shape {x.shape}.")
    if method == "umap":
        umap = require_package("umap", "monai_jepa.interpret.embedding_projection", "UMAP maps", "interpret")
        z = (x - x.mean(0)) / np.maximum(x.std(0), 1e-12)
        reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, x.shape[0] - 1), random_state=seed)
        return np.asarray(reducer.fit_transform(z), dtype=np.float64), {"method": "umap", "n_neighbors": n_neighbors}
    centred = x - x.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:2]
    axes *= np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(1)])[:, None]
    coords = centred @ axes.T
    if coords.shape[1] < 2:
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    var = s**2
    ratio = (var[:2] / var.sum()).tolist() if var.sum() > 0 else [0.0, 0.0]
    return coords, {"method": "pca", "explained_variance_ratio": ratio}


def plot_embedding_map(
    coords: np.ndarray,
    colour_by: Sequence,
    path: str | os.PathLike,
    title: str = "",
    legend_title: str = "label",
    axis_labels: Sequence[str] = ("component 1", "component 2"),
) -> str:
    """Scatter plot of 2D embedding coordinates, one colour per value of ``colour_by``, written atomically as PNG.

    Args:
        coords: ``(N, 2)`` coordinates (from :func:`embedding_projection`).
        colour_by: N values (class label, site, scanner, patient ...); each distinct value gets a colour and a legend
            entry (continuous values with more than 20 distinct levels get a colour bar instead).
        path: output PNG file; its folder must exist.
        title: figure title.
        legend_title: legend / colour bar title.
        axis_labels: axis titles.

    Returns:
        ``path`` as a string.
    """
    require_package("matplotlib", "monai_jepa.interpret.plot_embedding_map", "plots")
    xy = np.asarray(coords, dtype=np.float64)
    values = np.asarray(list(colour_by))
    if xy.ndim != 2 or xy.shape[1] != 2 or len(values) != len(xy):
        raise ValueError(f"coords must be (N, 2) and colour_by hold N values, got {xy.shape} and {len(values)}.")
    fig = Figure(figsize=(5.5, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    levels = sorted({str(v) for v in values})
    numeric = np.issubdtype(values.dtype, np.number)
    if numeric and len(levels) > 20:
        points = ax.scatter(xy[:, 0], xy[:, 1], c=values.astype(float), s=12, cmap="viridis")
        fig.colorbar(points, ax=ax, label=legend_title)
    else:
        for i, level in enumerate(levels):
            sel = np.array([str(v) == level for v in values])
            ax.scatter(xy[sel, 0], xy[sel, 1], s=12, color=f"C{i % 10}", label=level, alpha=0.8)
        ax.legend(title=legend_title, fontsize=7, title_fontsize=8, loc="best", markerscale=1.5)
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    return str(path)


def _read_table(path: str | os.PathLike) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"cannot read the table '{path}': {e}") from e


def embedding_map_from_csv(
    embeddings: str | os.PathLike,
    out: str | os.PathLike,
    colour_by: str = "label",
    colours_file: str | os.PathLike | None = None,
    method: str = "pca",
    seed: int = 0,
) -> dict:
    """Embedding map of an ``embeddings.csv`` written by :class:`~monai_jepa.handlers.EmbeddingWriter` (the bundles'
    ``embed`` / ``inference`` runs): ``id``, optional ``label``, features ``f0`` ... ``f{D-1}``.

    Args:
        embeddings: the CSV file.
        out: output PNG.
        colour_by: column giving the colours: a column of ``embeddings`` (e.g. ``"label"``) or, with ``colours_file``,
            of that file (e.g. ``"site"`` or ``"scanner"``), matched to the embeddings by ``id``.
        colours_file: optional CSV with an ``id`` column and the ``colour_by`` column.
        method: ``"pca"`` or ``"umap"``.
        seed: UMAP random state.

    Returns:
        ``{"png": out, "num_points": N, **projection info}``.

    Raises:
        ValueError: a missing column or file, an id without a colour, non-numeric features; each names the file.
    """
    rows = _read_table(embeddings)
    if not rows or "id" not in rows[0] or "f0" not in rows[0]:
        raise ValueError(f"'{embeddings}' must be an embeddings CSV with 'id' and feature columns 'f0', 'f1', ...")
    names = [k for k in rows[0] if k.startswith("f") and k[1:].isdigit()]
    try:
        features = np.array([[float(r[k]) for k in names] for r in rows])
    except (TypeError, ValueError) as e:
        raise ValueError(f"'{embeddings}' holds a non-numeric feature value: {e}") from e
    if colours_file is None:
        if colour_by not in rows[0]:
            raise ValueError(
                f"'{embeddings}' has no column '{colour_by}' (columns: {', '.join(list(rows[0])[:4])}...)."
            )
        colours = [r[colour_by] for r in rows]
    else:
        table = _read_table(colours_file)
        if not table or "id" not in table[0] or colour_by not in table[0]:
            raise ValueError(f"'{colours_file}' must have the columns 'id' and '{colour_by}'.")
        lookup = {r["id"]: r[colour_by] for r in table}
        missing = [r["id"] for r in rows if r["id"] not in lookup]
        if missing:
            raise ValueError(f"'{colours_file}' gives no '{colour_by}' for {len(missing)} id(s), e.g. '{missing[0]}'.")
        colours = [lookup[r["id"]] for r in rows]
    continuous = all(_is_number(c) for c in colours) and len(set(colours)) > 20
    coords, info = embedding_projection(features, method, seed=seed)
    axes = ("component 1", "component 2")
    if method == "pca":
        axes = tuple(f"PC{i + 1} ({100 * v:.0f}%)" for i, v in enumerate(info["explained_variance_ratio"]))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    title = f"{Path(embeddings).name}: {method.upper()}, {len(rows)} points"
    plot_embedding_map(coords, [float(c) for c in colours] if continuous else colours, out, title, colour_by, axes)
    return {"png": str(out), "num_points": len(rows), **info}


def _is_number(value: str) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
