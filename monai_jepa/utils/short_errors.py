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
"""One-line errors at the command line: importing this module installs :func:`install` (bundle configs list
``"$import monai_jepa.utils.short_errors"`` in their ``imports``).

A run that stops on a documented error (bad data, an unreadable checkpoint, a non-finite loss) prints
``error: <type>: <message>`` on standard error instead of the chain of tracebacks that MONAI's config machinery wraps
around it; the process still exits with status 1. Set ``MONAI_JEPA_DEBUG=1`` for the full traceback. Other errors
(bugs) keep their traceback.
"""

from __future__ import annotations

import os
import sys
from types import TracebackType

__all__ = ["DEBUG_ENV", "documented_error", "install"]

DEBUG_ENV = "MONAI_JEPA_DEBUG"
"""The environment variable that restores full tracebacks."""


def documented_error(exc: BaseException) -> BaseException | None:
    """The innermost documented error in the cause / context chain of ``exc``: a
    :class:`~monai_jepa.data.DataError`, a :class:`~monai_jepa.utils.fileio.CheckpointReadError` or a
    ``FloatingPointError`` (the trainers' non-finite loss and gradient errors); ``None`` when there is none."""
    from monai_jepa.data.errors import DataError
    from monai_jepa.utils.fileio import CheckpointReadError

    found, seen, current = None, set(), exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (DataError, CheckpointReadError, FloatingPointError)):
            found = current
        current = current.__cause__ or current.__context__
    return found


def _hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    error = None if os.environ.get(DEBUG_ENV, "").strip() not in ("", "0") else documented_error(value)
    if error is None:
        sys.__excepthook__(kind, value, tb)
        return
    print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
    print(f"(the full traceback: set {DEBUG_ENV}=1)", file=sys.stderr)


def install() -> None:
    """Make uncaught documented errors print one line (see the module docstring); other errors are unchanged."""
    sys.excepthook = _hook


install()
