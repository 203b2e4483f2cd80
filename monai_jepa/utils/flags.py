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
"""On / off options as they arrive from a bundle command line.

``python -m monai.bundle run ... --skip_bad false`` passes the *string* ``"false"`` (only ``False`` / ``True`` become
booleans), which Python takes as true. :func:`as_bool` reads the usual spellings and refuses anything else, naming the
option.
"""

from __future__ import annotations

from typing import Any

__all__ = ["as_bool"]

_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0", "none", "")


def as_bool(value: Any, name: str) -> bool:
    """``value`` as a boolean: a bool, 0 / 1, or one of ``true / false, yes / no, on / off, 1 / 0`` (any case).

    Args:
        value: the option's value (from a config or a command line).
        name: the option's name, for the error message.

    Raises:
        ValueError: any other value, naming the option.

    Example::

        as_bool("false", "skip_bad")  # False
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"`{name}` must be true or false, got {value!r}.")
