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
import io
from importlib import resources

import pytest
from pydicom.datadict import keyword_for_tag

from monai_jepa.apps.deid import (
    BASIC_PROFILE,
    BASIC_PROFILE_TABLE,
    EXTRA_ATTRIBUTES,
    EXTRA_ATTRIBUTES_FILE,
    PROFILE_FILE,
    ProfileEntry,
    load_profile_table,
    resolve_action,
)
from monai_jepa.apps.deid.profile import NESTED_ACTIONS, TOP_LEVEL_ACTIONS


def test_profile_table_is_encoded_as_data():
    assert len(BASIC_PROFILE_TABLE) >= 450 and len({entry.tag for entry in BASIC_PROFILE_TABLE}) == len(
        BASIC_PROFILE_TABLE
    )
    expected = {
        "PatientName": "Z",
        "PatientID": "Z",
        "PatientBirthDate": "Z",
        "PatientSex": "Z",
        "PatientAge": "X",
        "PatientAddress": "X",
        "OtherPatientIDs": "X",
        "AccessionNumber": "Z",
        "InstitutionName": "X/Z/D",
        "InstitutionAddress": "X",
        "ReferringPhysicianName": "Z",
        "PerformingPhysicianName": "X",
        "OperatorsName": "X/Z/D",
        "StationName": "X/Z/D",
        "StudyDate": "Z",
        "SeriesDate": "X/D",
        "ContentDate": "Z/D",
        "StudyDescription": "X",
        "DeviceSerialNumber": "X/Z/D",
        "StudyInstanceUID": "U",
        "SeriesInstanceUID": "U",
        "SOPInstanceUID": "U",
        "FrameOfReferenceUID": "U",
        "ReferencedSOPInstanceUID": "U",
        "MediaStorageSOPInstanceUID": "U",
        "ReferencedImageSequence": "X/Z/U*",
        "RequestAttributesSequence": "X",
    }
    by_keyword = {entry.keyword: entry.action for entry in BASIC_PROFILE_TABLE}
    assert {k: by_keyword.get(k) for k in expected} == expected
    for entry in BASIC_PROFILE.values():  # keywords agree with the DICOM dictionary, every code resolves
        assert keyword_for_tag(entry.tag) == entry.keyword
        assert resolve_action(entry.action, entry.tag) in ("D", "Z", "X", "U")


def test_table_is_package_data_read_with_importlib_resources():
    """The tables are CSV files inside the package (so a wheel ships them), and the module's tables are their rows."""
    package = resources.files("monai_jepa.apps.deid")
    for name, table in ((PROFILE_FILE, BASIC_PROFILE_TABLE), (EXTRA_ATTRIBUTES_FILE, EXTRA_ATTRIBUTES)):
        rows = list(csv.DictReader(io.StringIO(package.joinpath(name).read_text(encoding="utf-8"))))
        assert len(rows) == len(table)
        assert [(int(r["group"] + r["element"], 16), r["keyword"], r["action"]) for r in rows] == list(table)
    assert BASIC_PROFILE_TABLE[0] == ProfileEntry(0x00001000, "AffectedSOPInstanceUID", "X")
    assert BASIC_PROFILE_TABLE[-1] == ProfileEntry(0xFFFCFFFC, "DataSetTrailingPadding", "X")
    assert [entry.tag for entry in BASIC_PROFILE_TABLE] == sorted(entry.tag for entry in BASIC_PROFILE_TABLE)
    assert len(BASIC_PROFILE) == len(BASIC_PROFILE_TABLE) + len(EXTRA_ATTRIBUTES) == 477  # no tag in both tables
    assert BASIC_PROFILE[0x00080012] == ProfileEntry(0x00080012, "InstanceCreationDate", "X")


def test_resolved_actions_by_level():
    assert TOP_LEVEL_ACTIONS[0x00082112] == "X" and NESTED_ACTIONS[0x00082112] == "U"  # Source Image Sequence
    assert TOP_LEVEL_ACTIONS[0x00081140] == "X" and NESTED_ACTIONS[0x00081140] == "U"  # Referenced Image Sequence
    assert TOP_LEVEL_ACTIONS[0x00080080] == NESTED_ACTIONS[0x00080080] == "X"  # Institution Name
    counts = {code: list(TOP_LEVEL_ACTIONS.values()).count(code) for code in ("D", "Z", "X", "U")}
    assert counts == {"D": 56, "Z": 40, "X": 329, "U": 52} and sum(counts.values()) == len(BASIC_PROFILE)


def test_load_profile_table_from_text():
    text = "group,element,keyword,action\n0010,0010,PatientName,Z\n0008,0080,InstitutionName,X/Z/D\n\n"
    assert load_profile_table("site.csv", text=text) == (
        ProfileEntry(0x00100010, "PatientName", "Z"),
        ProfileEntry(0x00080080, "InstitutionName", "X/Z/D"),
    )


@pytest.mark.parametrize(
    "body, message",
    [
        ("tag,keyword,action\n(0010,0010),PatientName,Z\n", "header"),
        ("group,element,keyword,action\n0010,0010,PatientName\n", "line 2: expected 4 columns"),
        ("group,element,keyword,action\n10,0010,PatientName,Z\n", "line 2: group and element"),
        ("group,element,keyword,action\n0010,0010,,Z\n", "line 2: the keyword is empty"),
        ("group,element,keyword,action\n0010,0010,PatientName,Q\n", "line 2: unknown action code 'Q'"),
        ("group,element,keyword,action\n0010,0010,PatientName,Z\n0010,0010,PatientName,X\n", "line 3: .* twice"),
    ],
)
def test_load_profile_table_rejects_malformed_rows(body, message):
    with pytest.raises(ValueError, match=message):
        load_profile_table("site.csv", text=body)


@pytest.mark.parametrize(
    "code, keyword, nested, expected",
    [
        ("X/Z/D", "InstitutionName", False, "X"),
        ("X/Z/D", "DeviceSerialNumber", False, "D"),  # type 1 in the Enhanced General Equipment module
        ("Z/D", "ContentDate", False, "D"),
        ("Z/D", "ContrastBolusAgent", False, "Z"),
        ("X/Z", "AcquisitionContextSequence", False, "Z"),
        ("X/Z", "AcquisitionDate", False, "X"),
        ("X/Z/U*", "SourceImageSequence", False, "X"),
        ("X/Z/U*", "SourceImageSequence", True, "U"),
        ("U", "StudyInstanceUID", True, "U"),
    ],
)
def test_resolve_action(code, keyword, nested, expected):
    tag = next(entry.tag for entry in BASIC_PROFILE_TABLE if entry.keyword == keyword)
    assert resolve_action(code, tag, nested=nested) == expected
    with pytest.raises(ValueError):
        resolve_action("Q", tag)
