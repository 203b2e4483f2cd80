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
"""Atomic file writes: a reader sees the previous file or the complete new one, never a partial file."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import torch

__all__ = [
    "CheckpointReadError",
    "atomic_torch_save",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "fsync_dir",
    "load_checkpoint_file",
    "output_name",
]


def fsync_dir(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (e.g. a rename into it) to disk; does nothing outside POSIX.

    Args:
        folder: the folder to flush.
    """
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def output_name(item: Mapping[Any, Any], name_key: str, writer: str) -> str:
    """The output file name of a per-case writer: the item's ``name_key`` (the pseudonymous case id of a datalist).

    Source file and folder names are never used instead: they may hold patient names, IDs or dates.

    Raises:
        KeyError: when the item has no non-empty ``name_key``.
        ValueError: when the name is not a plain file name (path separators, ``.`` / ``..``, NUL).
    """
    name = item.get(name_key)
    if name is None or not str(name).strip():
        raise KeyError(
            f"{writer} needs an output name in the item's '{name_key}' key (the case id of the datalist); source file "
            "names are not reused, they may hold patient data."
        )
    name = str(name)
    if name in (".", "..") or any(c in name for c in "/\\\0"):
        raise ValueError(f"{writer}: the output name {name!r} in '{name_key}' must be a plain file name.")
    return name


def atomic_write(
    path: str | os.PathLike, write_fn: Callable[[IO[Any]], Any], text: bool = False, permissions: int | None = None
) -> Path:
    """Write ``path`` through ``write_fn(file)`` atomically.

    ``write_fn`` writes to a new temporary file in the same folder as ``path``; the file is flushed and fsync-ed,
    renamed over ``path`` with ``os.replace`` and the folder is fsync-ed. On any failure (including in ``write_fn``)
    the temporary file is removed and the previous ``path``, if any, is left intact. The folder must exist.

    Args:
        path: destination file.
        write_fn: called once with the open temporary file.
        text: open the file in text mode (UTF-8, no newline translation) instead of binary mode.
        permissions: file mode bits to set before the rename (``None``: the default of a new file).

    Returns:
        ``path`` as a ``Path``.

    Example::

        atomic_write("table.csv", lambda f: csv.writer(f).writerows(rows), text=True)
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "x" if text else "xb", **({"encoding": "utf-8", "newline": ""} if text else {})) as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        if permissions is not None:
            os.chmod(tmp, permissions)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`); returns ``path`` as a ``Path``."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`), encoded with ``encoding`` and without
    newline translation; returns ``path`` as a ``Path``.

    Example::

        atomic_write_text("metrics.json", json.dumps(metrics) + "\\n")
    """
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` that never leaves a partial file at ``path``: the previous file stays intact on any failure.

    The object is written to a temporary file in the same folder, flushed and fsync-ed, then atomically renamed with
    ``os.replace`` (see :func:`atomic_write`).

    Args:
        obj: what to save.
        path: destination file.

    Returns:
        ``path`` as a ``Path``.
    """
    return atomic_write(path, lambda f: torch.save(obj, f))


class CheckpointReadError(RuntimeError, ValueError):
    """A checkpoint file that exists but cannot be read (empty, truncated, corrupt, not a PyTorch file, or refused by
    ``weights_only=True``); the message names the file, its size and the reason."""


def load_checkpoint_file(path: str | os.PathLike, what: str = "checkpoint file") -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with errors that name the file and the reason.

    Args:
        path: the file.
        what: how the file is named in the errors (e.g. ``"pretrained checkpoint"``).

    Raises:
        FileNotFoundError: when ``path`` is not a file.
        CheckpointReadError: when the file is empty or cannot be unpickled with ``weights_only=True`` (no code in a
            checkpoint is ever run).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} '{path}' does not exist.")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointReadError(f"{what} '{path}' is empty (0 bytes): an interrupted copy or write?")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        reason = f"{type(e).__name__}: {e}".strip().rstrip(":")
        raise CheckpointReadError(
            f"{what} '{path}' could not be read with torch.load(weights_only=True) ({size} bytes: truncated, corrupt "
            f"or not a PyTorch checkpoint?): {reason}"
        ) from e
