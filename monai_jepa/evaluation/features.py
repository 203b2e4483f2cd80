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
"""Frozen-feature extraction, and the small data helpers the evaluation protocols share.

The evaluation functions accept data in four forms, called *data* below:

- an image tensor or array ``(N, C, *spatial)`` (labels passed separately, or none);
- a pair ``(images, labels)`` of tensors / arrays;
- a ``torch.utils.data.Dataset`` (e.g. a MONAI ``Dataset``) whose items are dicts ``{image_key: ..., label_key: ...}``
  or ``(image, label)`` tuples;
- a ``torch.utils.data.DataLoader`` over such items (used as it is: its batch size and order are kept).

Integer images are cast to float32 without rescaling: normalise intensities beforehand (or in the dataset transform).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from monai.data import DataLoader as MonaiDataLoader
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from monai_jepa.engines.checkpoint import unwrap_network

__all__ = [
    "as_data_loader",
    "autocast_context",
    "data_labels",
    "data_length",
    "embed_batch",
    "extract_features",
    "split_batch",
    "subset_data",
]


def _is_array(x: Any) -> bool:
    return isinstance(x, (torch.Tensor, np.ndarray))


def _is_pair(data: Any) -> bool:
    return isinstance(data, (tuple, list)) and len(data) == 2 and _is_array(data[0])


def _as_tensor(x: Any) -> torch.Tensor:
    t = torch.as_tensor(x) if not isinstance(x, torch.Tensor) else x
    return t.as_subclass(torch.Tensor) if type(t) is not torch.Tensor else t


def as_data_loader(
    data: Any,
    labels: Any = None,
    batch_size: int = 256,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    num_workers: int = 0,
    drop_last: bool = False,
) -> DataLoader:
    """A data loader over *data* (see the module docstring).

    Args:
        data: images, an ``(images, labels)`` pair, a dataset or a data loader (returned unchanged).
        labels: labels of an image tensor / array given alone (``None``: no labels).
        batch_size: batch size of the new loader.
        shuffle: shuffle the samples every epoch.
        generator: generator of the shuffling (for reproducible orders).
        num_workers: loader worker processes.
        drop_last: drop the last incomplete batch.

    Returns:
        a ``DataLoader`` whose batches are ``(images,)``, ``(images, labels)`` tuples or collated dicts.
    """
    if isinstance(data, DataLoader):
        return data
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    kwargs: dict[str, Any] = dict(
        batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=num_workers, drop_last=drop_last
    )
    if _is_pair(data):
        data, labels = data
    if _is_array(data):
        images = _as_tensor(data)
        if labels is None:
            return DataLoader(TensorDataset(images), **kwargs)
        targets = _as_tensor(labels)
        if targets.shape[0] != images.shape[0]:
            raise ValueError(f"images and labels must have the same length, got {images.shape[0]} and {len(targets)}.")
        return DataLoader(TensorDataset(images, targets), **kwargs)
    if isinstance(data, Dataset):
        return MonaiDataLoader(data, **kwargs)  # MONAI's collate handles dicts of MetaTensors
    raise ValueError(
        "data must be an image tensor / array, an (images, labels) pair, a Dataset or a DataLoader, "
        f"got {type(data).__name__}."
    )


def split_batch(batch: Any, image_key: str = "image", label_key: str = "label") -> tuple[torch.Tensor, Any]:
    """Images and labels (``None`` when absent) of a collated batch (a dict, a tuple / list or a tensor)."""
    if isinstance(batch, Mapping):
        if image_key not in batch:
            raise ValueError(f"batch has no image key '{image_key}'; its keys are {sorted(map(str, batch))}.")
        images, labels = batch[image_key], batch.get(label_key)
    elif isinstance(batch, (tuple, list)):
        images, labels = batch[0], (batch[1] if len(batch) > 1 else None)
    else:
        images, labels = batch, None
    images = _as_tensor(images)
    if not images.is_floating_point():
        images = images.float()
    if labels is not None:
        labels = _as_tensor(labels)
    return images, labels


def data_length(data: Any) -> int:
    """Number of samples of *data*."""
    if _is_pair(data):
        return len(data[0])
    if _is_array(data):
        return len(data)
    if isinstance(data, DataLoader):
        return len(data.dataset)  # type: ignore[arg-type]
    if isinstance(data, Dataset):
        return len(data)  # type: ignore[arg-type]
    raise ValueError(f"unsupported data type {type(data).__name__}.")


def data_labels(data: Any, label_key: str = "label") -> torch.Tensor:
    """All labels of *data*, in order, without loading images when possible.

    For a MONAI ``Dataset`` (or a ``Subset`` of one) the labels are read from the un-transformed items of its
    ``data`` list when they hold ``label_key``; otherwise every item is loaded.

    Returns:
        tensor ``(N,)`` or ``(N, K)``.

    Raises:
        ValueError: when the data carry no labels.
    """
    if _is_pair(data):
        return _as_tensor(data[1])
    if isinstance(data, DataLoader):
        data = data.dataset
    if isinstance(data, Dataset):
        base, indices = data, None
        if isinstance(data, Subset):
            base, indices = data.dataset, list(data.indices)
        items = getattr(base, "data", None)
        if (
            isinstance(items, Sequence)
            and len(items) == len(base)
            and all(isinstance(it, Mapping) and label_key in it for it in items)  # type: ignore[arg-type]
        ):
            picked = [items[i] for i in indices] if indices is not None else list(items)
            return torch.stack([_as_tensor(np.asarray(it[label_key])) for it in picked])
        labels = []
        for i in range(len(data)):  # type: ignore[arg-type]
            item = data[i]
            if isinstance(item, Mapping):
                label = item.get(label_key)
            else:
                label = item[1] if isinstance(item, (tuple, list)) and len(item) > 1 else None
            if label is None:
                raise ValueError(f"item {i} of the dataset has no label (expected key '{label_key}').")
            labels.append(_as_tensor(np.asarray(label)))
        return torch.stack(labels)
    raise ValueError(
        f"data of type {type(data).__name__} carry no labels; pass (images, labels) or a labelled Dataset."
    )


def subset_data(data: Any, indices: Sequence[int] | np.ndarray) -> Any:
    """The samples ``indices`` of *data* (an ``(images, labels)`` pair stays a pair, a dataset becomes a ``Subset``)."""
    idx = np.asarray(indices, dtype=np.int64)
    if _is_pair(data):
        return data[0][idx], data[1][idx]
    if _is_array(data):
        return data[idx]
    if isinstance(data, DataLoader):
        data = data.dataset
    if isinstance(data, Dataset):
        return Subset(data, idx.tolist())
    raise ValueError(f"unsupported data type {type(data).__name__}.")


def autocast_context(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    """bf16 ``torch.autocast`` on ``device`` when ``amp``, else a no-op context."""
    if not amp:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def embed_batch(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Pooled features ``(B, D)`` of a batch: ``model.embed(x)`` when the model has it, else ``model(x)``.

    ``model(x)`` may return a tensor (flattened to ``(B, D)``) or a ``(tokens, pooled)`` pair (``pooled`` is used).
    """
    net = unwrap_network(model)
    if callable(getattr(net, "embed", None)):
        out = net.embed(images)
    else:
        out = model(images)
        if isinstance(out, (tuple, list)):
            if len(out) != 2:
                raise ValueError(f"a model returning a tuple must return (tokens, pooled), got {len(out)} outputs.")
            out = out[1]
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"the model must return a tensor or a (tokens, pooled) pair, got {type(out).__name__}.")
    out = out.as_subclass(torch.Tensor)
    return out.flatten(1) if out.ndim > 2 else out.reshape(out.shape[0], -1)


@torch.no_grad()
def extract_features(
    model: nn.Module,
    data: Any,
    device: str | torch.device = "cpu",
    batch_size: int = 256,
    amp: bool = False,
    image_key: str = "image",
    label_key: str = "label",
    labels: Any = None,
    num_workers: int = 0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Frozen features of every sample of *data*, in order.

    The model runs in eval mode without gradients (its previous train / eval mode is restored afterwards) and is
    moved to ``device``. Features come from ``model.embed(x)`` when the model has it
    (:py:class:`~monai_jepa.networks.LeJEPAModel`), else from ``model(x)`` (a tensor, or the pooled half of a
    ``(tokens, pooled)`` pair as returned by :py:class:`~monai_jepa.networks.ConvEncoder` and
    :py:class:`~monai_jepa.networks.JEPAViT`).

    Args:
        model: the encoder.
        data: images ``(N, C, *spatial)``, an ``(images, labels)`` pair, a dataset of dicts / tuples or a loader.
        device: device of the forward passes.
        batch_size: batch size (ignored for a data loader).
        amp: run the forward passes under bf16 autocast (features are returned in float32).
        image_key: image key of dict items.
        label_key: label key of dict items.
        labels: labels of an image tensor / array given alone.
        num_workers: loader worker processes (ignored for a data loader).

    Returns:
        ``(features, labels)``: float32 tensor ``(N, D)`` on the CPU, and the labels ``(N,)`` / ``(N, K)`` (``None``
        when the data carry none).

    Example::

        >>> feats, y = extract_features(model, (images, labels), batch_size=128)  # (N, embed_dim), (N,)
    """
    device = torch.device(device)
    loader = as_data_loader(data, labels, batch_size=batch_size, num_workers=num_workers)
    was_training = model.training
    model.eval().to(device)
    feats: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    try:
        for batch in loader:
            images, y = split_batch(batch, image_key, label_key)
            with autocast_context(device, amp):
                out = embed_batch(model, images.to(device, non_blocking=True))
            feats.append(out.float().cpu())
            if y is not None:
                targets.append(y.cpu())
    finally:
        model.train(was_training)
    if not feats:
        raise ValueError("data yielded no samples.")
    if targets and len(targets) != len(feats):
        raise ValueError(f"some batches have no labels (label key '{label_key}').")
    return torch.cat(feats), (torch.cat(targets) if targets else None)
