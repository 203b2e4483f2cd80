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
"""Release a bundle's trained weights the way the MONAI Model Zoo expects them: ``models/model.pt`` (small: a chosen
subset of entries, floating-point tensors cast to half precision), ``large_files.yml`` with its SHA-256, and a
``released_weights`` record in ``configs/metadata.json`` (hash, size, dtype, data, command and budget)."""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.utils import look_up_option

from monai_jepa.utils.fileio import atomic_write_bytes, atomic_write_text, load_checkpoint_file

__all__ = ["RELEASE_DTYPES", "release_weights", "sha256_file"]

RELEASE_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def release_weights(
    checkpoint: str | os.PathLike,
    bundle_dir: str | os.PathLike,
    drop_prefixes: Sequence[str] = (),
    dtype: str = "float16",
    max_mb: float = 25.0,
    key: str = "model",
    url: str = "",
    data: str = "",
    command: str = "",
    budget: str = "",
) -> dict[str, Any]:
    """Write ``<bundle_dir>/models/model.pt`` from a training checkpoint, with ``large_files.yml`` and metadata.

    The checkpoint is read with ``weights_only=True``; its state dict (under ``key`` for a
    :class:`~monai_jepa.engines.JEPACheckpointer` file, else the file itself) loses the entries starting with one of
    ``drop_prefixes`` (training-only parts such as ``"projector."`` or ``"predictor."``) and its floating-point
    tensors are cast to ``dtype`` (they load into a float32 network unchanged by ``load_state_dict``). The file is
    built in memory and refused when larger than ``max_mb``: nothing is written then. Each output is written
    atomically.

    Args:
        checkpoint: the training checkpoint (e.g. ``<output_dir>/models/model.pt``).
        bundle_dir: the bundle folder (holding ``configs/metadata.json``).
        drop_prefixes: entry-name prefixes left out.
        dtype: ``"float16"``, ``"bfloat16"`` or ``"float32"``.
        max_mb: size limit of the file in MB (10^6 bytes; the Model Zoo's limit for files kept in its repository is
            25).
        key: the state dict's key in a dict checkpoint.
        url: where a copy without the file downloads it from (``large_files.yml``; may be empty while the file is
            kept beside the configs: MONAI skips the download when a file with the right hash exists).
        data: the data the weights were trained on (name, licence, split).
        command: the command that produced the checkpoint.
        budget: the training budget (time, iterations, machine).

    Returns:
        the ``released_weights`` record written into the metadata.

    Raises:
        FileNotFoundError: no checkpoint or no ``configs/metadata.json``.
        ValueError: an empty selection, a state dict that is not one, or a file over ``max_mb``.
    """
    bundle = Path(bundle_dir)
    meta_file = bundle / "configs" / "metadata.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"'{meta_file}' does not exist: bundle_dir must be a bundle folder.")
    torch_dtype = look_up_option(dtype, RELEASE_DTYPES)
    ckpt = load_checkpoint_file(checkpoint)
    state = ckpt.get(key, ckpt) if isinstance(ckpt, Mapping) else ckpt
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"'{checkpoint}' holds no state dict of tensors (looked under '{key}' and at the top level).")
    prefixes = tuple(drop_prefixes)
    kept = {k: v for k, v in state.items() if not (prefixes and str(k).startswith(prefixes))}
    if not kept:
        raise ValueError(f"no entry of '{checkpoint}' is left after dropping the prefixes {list(prefixes)}.")
    kept = {k: (v.to(torch_dtype) if v.is_floating_point() else v).contiguous() for k, v in kept.items()}
    buffer = io.BytesIO()
    torch.save(kept, buffer)
    payload = buffer.getvalue()
    if len(payload) > max_mb * 1e6:
        raise ValueError(
            f"the weights of '{checkpoint}' take {len(payload) / 1e6:.1f} MB in {dtype} after dropping "
            f"{list(prefixes)}, over the {max_mb:g} MB limit: drop training-only parts or use a smaller dtype."
        )
    record = {
        "path": "models/model.pt",
        "sha256": hashlib.sha256(payload).hexdigest(),
        "size_bytes": len(payload),
        "dtype": dtype,
        "num_parameters": int(sum(v.numel() for v in kept.values() if v.is_floating_point())),
        "dropped_prefixes": list(prefixes),
        "data": data,
        "command": command,
        "budget": budget,
        "date": datetime.date.today().isoformat(),
    }
    (bundle / "models").mkdir(exist_ok=True)
    atomic_write_bytes(bundle / "models" / "model.pt", payload)
    lines = ["large_files:", f"  - path: {json.dumps(record['path'])}", f"    url: {json.dumps(url)}",
             f"    hash_val: {json.dumps(record['sha256'])}", '    hash_type: "sha256"']  # fmt: skip
    atomic_write_text(bundle / "large_files.yml", "\n".join(lines) + "\n")
    meta = json.loads(meta_file.read_text())
    meta["released_weights"] = record
    atomic_write_text(meta_file, json.dumps(meta, indent=4) + "\n")
    return record
