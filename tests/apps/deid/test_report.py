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

from __future__ import annotations

import csv
from pathlib import Path

import pydicom

from monai_jepa.apps.deid import BASIC_PROFILE, CHANGE_ACTIONS, REPORT_COLUMNS, DeidChange, report_rows
from monai_jepa.apps.deid.report import tag_str
from tests.apps.deid._common import elements


def test_tag_str_and_report_rows():
    assert tag_str(0x00100010) == "(0010,0010)" and tag_str(0x7FE00010) == "(7FE0,0010)"
    changes = [DeidChange("(0010,0020)", "PatientID", "pseudonym"), DeidChange("(0029,1010)", "", "remove", "p")]
    assert report_rows("a/b.dcm", changes) == [
        ("a/b.dcm", "(0010,0020)", "PatientID", "pseudonym", ""),
        ("a/b.dcm", "(0029,1010)", "", "remove", "p"),
    ]


def test_csv_report_holds_no_original_value(samples_run):
    src, out, summary = samples_run
    with open(summary["report_csv"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and tuple(rows[0]) == REPORT_COLUMNS
    written = {Path(p).relative_to(out).as_posix() for p in summary["written"]}
    assert len(rows) == summary["num_changes"] and {r["file"] for r in rows} == written
    assert {r["action"] for r in rows} >= {"remove", "remove_private", "empty", "replace_uid", "pseudonym", "set"}
    assert {r["action"] for r in rows} <= set(CHANGE_ACTIONS)
    cells = {cell for row in rows for cell in row.values()}
    text = Path(summary["report_csv"]).read_text()
    assert not any(p.stem in text for p in src.glob("*.dcm"))  # no input file name either
    for path in sorted(src.glob("*.dcm")):
        for _, elem in elements(pydicom.dcmread(path, stop_before_pixels=True)):
            if elem.VR in ("SQ", "OB", "OW", "UN") or elem.is_empty:
                continue
            if int(elem.tag) in BASIC_PROFILE or elem.tag.is_private:
                value = str(elem.value)
                assert value not in cells and (len(value) < 6 or value not in text), (path.name, elem.tag)
