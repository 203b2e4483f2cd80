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

import os
import subprocess
import sys

from monai_jepa.data.errors import InvalidImageError
from monai_jepa.utils.short_errors import documented_error

WRAPPED = """
import monai_jepa.utils.short_errors
from monai_jepa.data.errors import InvalidImageError
try:
    try:
        raise InvalidImageError("scan.nii.gz: 3 of 64 voxels are NaN or infinite.", "scan.nii.gz")
    except Exception as e:
        raise RuntimeError("applying transform LoadVolumed") from e
except Exception as e:
    raise RuntimeError("Failed to instantiate component 'resolve_volume_source'") from e
"""


def _run(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})


def test_documented_error_prints_one_line_and_exits_1():
    proc = _run(WRAPPED, MONAI_JEPA_DEBUG="")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        "error: InvalidImageError: scan.nii.gz: 3 of 64 voxels are NaN or infinite.",
        "(the full traceback: set MONAI_JEPA_DEBUG=1)",
    ]
    debug = _run(WRAPPED, MONAI_JEPA_DEBUG="1")
    assert debug.returncode == 1 and debug.stderr.count("Traceback") == 3


def test_other_errors_keep_their_traceback():
    proc = _run("import monai_jepa.utils.short_errors\nraise KeyError('a bug')", MONAI_JEPA_DEBUG="")
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "KeyError: 'a bug'" in proc.stderr


def test_documented_error_finds_the_innermost_one():
    inner = InvalidImageError("inner", "a")
    try:
        try:
            raise inner
        except InvalidImageError as e:
            raise RuntimeError("outer") from e
    except RuntimeError as outer:
        assert documented_error(outer) is inner
    assert documented_error(KeyError("x")) is None
