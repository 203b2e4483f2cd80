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

import pytest

from monai_jepa.apps.deid import AUTO_SHIFT_RANGE, DeidContext, anonymize_dataset
from tests.apps.deid._common import synthetic


def test_deterministic_uids_and_pseudonyms():
    runs = {}
    for salt in ("a", "a", "b"):
        ds = synthetic()
        anonymize_dataset(ds, DeidContext(salt=salt, uid_root="1.2.826.0.1.3680043.10.99."))
        runs.setdefault(salt, []).append((ds.SOPInstanceUID, ds.StudyInstanceUID, ds.PatientID))
    assert runs["a"][0] == runs["a"][1] and runs["a"][0] != runs["b"][0]
    assert all(uid.startswith("1.2.826.0.1.3680043.10.99.") and len(uid) <= 64 for uid in runs["a"][0][:2])
    ds = synthetic()
    anonymize_dataset(ds)  # random salt by default: not linkable to the runs above
    assert ds.PatientID != runs["a"][0][2] and ds.StudyInstanceUID.startswith("2.25.")


def test_uid_map_is_consistent_and_one_to_one():
    ctx = DeidContext(salt="s")
    first = ctx.map_uid("1.2.3")
    assert ctx.map_uid(" 1.2.3\x00") == first and ctx.uid_map == {"1.2.3": first}  # padding ignored
    assert first.startswith("2.25.") and int(first[5:]) < 2**128 and len(first) <= 64
    assert ctx.map_uid("1.2.4") != first
    assert DeidContext(salt="s").map_uid("1.2.3") == first != DeidContext(salt="t").map_uid("1.2.3")
    collide = DeidContext(salt="s")
    collide._digest = lambda domain, value: bytes(32)  # every UID hashes alike: the second one must be refused
    collide.map_uid("1.2.3")
    with pytest.raises(ValueError, match="one-to-one"):
        collide.map_uid("1.2.4")
    assert list(collide.uid_map) == ["1.2.3"]


def test_pseudonyms_and_date_offsets():
    ctx = DeidContext(salt="s", date_shift_days="auto")
    name = ctx.pseudonym("id:MRN-1")
    assert name == ctx.pseudonym("id:MRN-1") != ctx.pseudonym("id:MRN-2")
    assert name.startswith("ANON") and len(name) == 16 and name[4:] == name[4:].upper()
    offsets = [ctx.date_offset(f"id:MRN-{i}") for i in range(50)]
    low, high = AUTO_SHIFT_RANGE
    assert all(-high <= d <= -low for d in offsets) and len(set(offsets)) > 40
    assert ctx.date_offset("id:MRN-3") == offsets[3] and ctx.date_offsets["id:MRN-3"] == offsets[3]
    assert DeidContext(salt="s", date_shift_days=-7).date_offset("id:any") == -7
    assert DeidContext(salt="s").date_offset("id:any") == 0 and not DeidContext(salt="s").shifts_dates


def test_keep_private_rules_match_exact_and_creator_tags():
    ctx = DeidContext(keep_private_tags=["(0043,1010)", '0019,"GEMS_ACQU_01",02', "00291001"])
    assert ctx.keep_private_tags == ("(0043,1010)", '0019,"GEMS_ACQU_01",02', "00291001")
    assert ctx.keeps_private(0x00431010, None) and ctx.keeps_private(0x00291001, "ANY")
    assert ctx.keeps_private(0x00191002, "GEMS_ACQU_01 ") and ctx.keeps_private(0x00191102, "GEMS_ACQU_01")
    assert not ctx.keeps_private(0x00191002, "OTHER") and not ctx.keeps_private(0x00191002, None)
    assert not ctx.keeps_private(0x00431011, None)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"date_shift_days": "weekly"},
        {"date_shift_days": True},
        {"date_shift_days": 1.5},
        {"uid_root": "1.2.3"},
        {"uid_root": "1." * 30},
        {"salt": 123},
        {"keep_private_tags": "0029,1010"},
    ],
)
def test_invalid_options(kwargs):
    with pytest.raises(ValueError):
        DeidContext(**kwargs)


@pytest.mark.parametrize("rule", ["0010,0010", "not a tag", "0029,ACME,1010"])
def test_invalid_keep_private_rules(rule):
    with pytest.raises(ValueError, match="keep_private_tags"):
        DeidContext(keep_private_tags=[rule])
