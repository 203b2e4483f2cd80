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
"""Runs of :func:`monai_jepa.apps.deid.anonymize` on the shared data, made once per session for every deid test."""

from __future__ import annotations

import pytest

from monai_jepa.apps.deid import anonymize
from tests.apps.deid._common import BRAIN, SALT, SAMPLES, require


@pytest.fixture(scope="session")
def samples_run(tmp_path_factory):
    """``(src, out, summary)`` of pydicom's sample files de-identified with a CSV report."""
    src = require(SAMPLES)
    out = tmp_path_factory.mktemp("samples")
    summary = anonymize(src, out / "anon", salt=SALT, report_csv=out / "report.csv")
    return src, out / "anon", summary


@pytest.fixture(scope="session")
def brain_run(tmp_path_factory):
    """``(src, out, summary)`` of the TCIA brain series de-identified with per-patient date shifting."""
    src = require(BRAIN)
    out = tmp_path_factory.mktemp("brain") / "anon"
    summary = anonymize(src, out, salt=SALT, date_shift_days="auto")
    return src, out, summary
