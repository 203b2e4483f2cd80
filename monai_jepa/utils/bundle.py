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
"""The folder of the bundle whose configs are being parsed, for ``"bundle_root"`` in a MONAI bundle config.

Why a helper: MONAI (1.6.1) offers no stock way for a config to compute its own location. ``"bundle_root": "."``
(the Model Zoo default) is resolved against the current directory, so a bundle run from elsewhere (here: the
repository root, as the bundle READMEs document) would write its outputs beside the caller. ``bundle_root`` is a
workflow property that the caller may set (``--bundle_root``, ``ConfigWorkflow(..., bundle_root=...)``, as MONAI
Label and ``monai.fl`` do); when it does not, the helper reads the ``--config_file`` argument of the command line
(``monai.bundle run``, ``ckpt_export``, ``verify_net_in_out``), and otherwise answers with the current directory,
as ``"."`` would.
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["bundle_root_from_config"]


def _root_of(config_file: str | os.PathLike) -> str:
    folder = Path(config_file).resolve().parent
    return str(folder.parent if folder.name == "configs" else folder)


def _config_file_from_argv(argv: Sequence[str]) -> str | None:
    """The first file of the ``--config_file`` argument of ``argv`` (a path or a list literal), or None."""
    for i, arg in enumerate(argv):
        value = None
        if arg == "--config_file" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--config_file="):
            value = arg.split("=", 1)[1]
        if value is None:
            continue
        value = value.strip()
        if value.startswith(("[", "(")):
            try:
                files = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                files = value.strip("[]()").split(",")
            value = str(files[0]).strip().strip("'\"") if len(files) else None
        return value or None
    return None


def bundle_root_from_config(default: str | os.PathLike | None = None) -> str:
    """The absolute path of the bundle whose configs are being parsed, for ``"bundle_root"`` in a bundle config.

    Resolution order:

        1. the first ``--config_file`` on the command line (``python -m monai.bundle run``, ``ckpt_export``,
           ``verify_net_in_out``): the parent of its folder when that folder is named ``configs``, else the folder;
        2. ``default``, or the current directory.

    A value given by the caller wins over the config: ``--bundle_root /path`` on the command line, or
    ``ConfigWorkflow(config_file=..., bundle_root="/path")`` from Python (what MONAI Label does).

    Args:
        default: the answer when no ``--config_file`` is on the command line (default: the current directory).

    Returns:
        the bundle folder as an absolute path string.

    Example::

        "bundle_root": "$monai_jepa.utils.bundle_root_from_config()"
    """
    config_file = _config_file_from_argv(sys.argv)
    if config_file is not None:
        return _root_of(config_file)
    return str(Path(os.getcwd() if default is None else default).resolve())
