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
"""Helpers shared by the bundle tests: the environment of bundle subprocesses and the scan for stray outputs."""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def bundle_env(**extra: str) -> dict[str, str]:
    """Environment of a bundle subprocess run from the repository root: the checkout importable, one thread (plus
    ``extra`` variables)."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **extra}


def find_artifacts(pattern: re.Pattern, skip_dirs: Collection[str]) -> set[str]:
    """Paths of the files under the repository whose name fully matches ``pattern``, outside ``skip_dirs``."""
    found = set()
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in skip_dirs]
        found |= {os.path.join(root, f) for f in files if pattern.fullmatch(f)}
    return found
