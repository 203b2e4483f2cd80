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
"""The DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile, loaded from package data.

The profile's attribute table (PS3.15 Table E.1-1, "Basic Prof." column) ships with the package as
``ps3_15_basic_profile.csv``, one ``group,element,keyword,action`` row per attribute (hex group and element, sorted by
tag), with the profile's action codes:

- ``D``: replace with a non-zero length dummy value consistent with the VR;
- ``Z``: replace with a zero length value (a sequence becomes empty);
- ``X``: remove;
- ``U``: replace the UID with a new one, consistently within a run;
- compound codes (``X/Z``, ``X/D``, ``Z/D``, ``X/Z/D``, ``X/Z/U*``) are resolved by :func:`resolve_action` to the
  strictest form that keeps common IODs valid: ``Z`` or ``D`` for attributes that are type 1 or 2 in common image
  IODs (e.g. Content Date in multi-frame images, Device Serial Number in the Enhanced General Equipment module),
  ``U`` for reference sequences nested in other sequences (Source / Referenced Image Sequence inside the Derivation
  Image macro), ``X`` otherwise.

The three rows of Table E.1-1 that name repeating groups or classes of tags (Curve Data (50xx,xxxx), Overlay Data
(60xx,3000), Overlay Comments (60xx,4000) and "Private attributes") are applied by rule in
:mod:`monai_jepa.apps.deid.anonymizer`, not listed in the file.

``extra_attributes.csv`` (same columns) lists a few identifying attributes outside Table E.1-1 that are handled the
same way (instance creation date and time, file meta AE titles, newer patient identification attributes, frame
date-times): :data:`EXTRA_ATTRIBUTES`.
"""

from __future__ import annotations

import csv
import io
import re
from importlib import resources
from typing import NamedTuple

from monai.utils import look_up_option

__all__ = [
    "ProfileEntry",
    "PROFILE_FILE",
    "EXTRA_ATTRIBUTES_FILE",
    "ACTIONS",
    "load_profile_table",
    "BASIC_PROFILE_TABLE",
    "EXTRA_ATTRIBUTES",
    "BASIC_PROFILE",
    "resolve_action",
    "TOP_LEVEL_ACTIONS",
    "NESTED_ACTIONS",
]

#: File name (package data of :mod:`monai_jepa.apps.deid`) of PS3.15 Table E.1-1, Basic Profile column.
PROFILE_FILE = "ps3_15_basic_profile.csv"
#: File name (package data) of the identifying attributes outside Table E.1-1.
EXTRA_ATTRIBUTES_FILE = "extra_attributes.csv"
#: The single action codes of the profile.
ACTIONS = ("D", "Z", "X", "K", "C", "U")

_COLUMNS = ("group", "element", "keyword", "action")
_HEX4 = re.compile(r"^[0-9A-Fa-f]{4}$")
_CODE = re.compile(r"^[DZXKCU]\*?(/[DZXKCU]\*?)*$")


class ProfileEntry(NamedTuple):
    """One row of the confidentiality profile: the attribute's tag, DICOM keyword and action code."""

    tag: int
    keyword: str
    action: str


def load_profile_table(name: str = PROFILE_FILE, text: str | None = None) -> tuple[ProfileEntry, ...]:
    """Load a profile table (``group,element,keyword,action`` CSV) shipped as package data, or parse ``text``.

    Args:
        name: file name inside the :mod:`monai_jepa.apps.deid` package (:data:`PROFILE_FILE` or
            :data:`EXTRA_ATTRIBUTES_FILE`); also used in error messages when ``text`` is given.
        text: CSV content to parse instead of the packaged file (e.g. a site's own table).

    Returns:
        The rows in file order, one :class:`ProfileEntry` each.

    Raises:
        ValueError: the header is not ``group,element,keyword,action``, a group or element is not 4 hex digits, an
            action code is unknown, a keyword is empty, or a tag appears twice.

    Example::

        table = load_profile_table()
        print(len(table), table[0])  # 456 ProfileEntry(tag=4096, keyword='AffectedSOPInstanceUID', action='X')
    """
    if text is None:
        text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    reader = csv.reader(io.StringIO(text))
    header = tuple(next(reader, ()))
    if header != _COLUMNS:
        raise ValueError(f"{name}: the header must be {','.join(_COLUMNS)}, got {','.join(header)!r}.")
    entries: list[ProfileEntry] = []
    seen: set[int] = set()
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(_COLUMNS):
            raise ValueError(f"{name} line {line}: expected {len(_COLUMNS)} columns, got {len(row)}.")
        group, element, keyword, action = (cell.strip() for cell in row)
        if not (_HEX4.match(group) and _HEX4.match(element)):
            raise ValueError(f"{name} line {line}: group and element must be 4 hex digits, got {group},{element}.")
        if not keyword:
            raise ValueError(f"{name} line {line}: the keyword is empty.")
        if not _CODE.match(action):
            raise ValueError(f"{name} line {line}: unknown action code {action!r} (codes: {', '.join(ACTIONS)}).")
        tag = (int(group, 16) << 16) | int(element, 16)
        if tag in seen:
            raise ValueError(f"{name} line {line}: the tag ({group},{element}) appears twice.")
        seen.add(tag)
        entries.append(ProfileEntry(tag, keyword, action))
    return tuple(entries)


#: PS3.15 Table E.1-1, Basic Application Level Confidentiality Profile column, sorted by tag.
BASIC_PROFILE_TABLE: tuple[ProfileEntry, ...] = load_profile_table(PROFILE_FILE)
#: Identifying attributes outside Table E.1-1, handled with the same action codes.
EXTRA_ATTRIBUTES: tuple[ProfileEntry, ...] = load_profile_table(EXTRA_ATTRIBUTES_FILE)
#: Every attribute handled by tag: ``{tag: ProfileEntry}`` (Table E.1-1 and :data:`EXTRA_ATTRIBUTES`).
BASIC_PROFILE: dict[int, ProfileEntry] = {entry.tag: entry for entry in BASIC_PROFILE_TABLE + EXTRA_ATTRIBUTES}

# Compound codes of attributes that are type 1 or 2 in common image IODs resolve to Z or D instead of X.
_REQUIRED_IN_COMMON_IODS: dict[int, str] = {
    0x00080023: "D",  # Content Date: type 1 in multi-frame, enhanced and segmentation IODs
    0x00080033: "D",  # Content Time: idem
    0x0008002A: "D",  # Acquisition DateTime: type 1C in enhanced CT / MR / US / XA IODs
    0x00181000: "D",  # Device Serial Number: type 1 in the Enhanced General Equipment module
    0x00400555: "Z",  # Acquisition Context Sequence: type 2 in the Acquisition Context module
    0x30060009: "D",  # Structure Set Time: type 2 in the Structure Set module (Z not allowed)
    0x300A0006: "D",  # RT Plan Date: type 2 in the RT General Plan module (Z not allowed)
    0x300A0007: "D",  # RT Plan Time: idem
    0x30080250: "D",  # Treatment Date: type 2 in RT treatment records (Z not allowed)
    0x30080251: "D",  # Treatment Time: idem
}


def resolve_action(code: str, tag: int, nested: bool = False) -> str:
    """Resolve a profile action code, possibly compound, to one action.

    Args:
        code: a Table E.1-1 code: ``"D"``, ``"Z"``, ``"X"``, ``"K"``, ``"C"``, ``"U"`` or a compound such as ``"X/Z"``,
            ``"X/D"``, ``"Z/D"``, ``"X/Z/D"``, ``"X/Z/U*"``.
        tag: the attribute's tag as an int (``0xGGGGEEEE``); decides whether common IODs require the attribute.
        nested: whether the attribute sits inside a sequence item (reference sequences there are kept with their UIDs
            replaced, as the Derivation Image and Referenced Image macros require them).

    Returns:
        One of ``"D"``, ``"Z"``, ``"X"``, ``"K"``, ``"C"``, ``"U"``.

    Raises:
        ValueError: ``code`` holds an unknown action.

    Example::

        resolve_action("X/Z/D", 0x00080080)  # Institution Name -> "X"
        resolve_action("X/Z/D", 0x00181000)  # Device Serial Number -> "D"
        resolve_action("X/Z/U*", 0x00082112, nested=True)  # Source Image Sequence -> "U"
    """
    options = [look_up_option(opt.strip().rstrip("*"), ACTIONS) for opt in code.split("/")]
    if len(options) == 1:
        return options[0]
    if _REQUIRED_IN_COMMON_IODS.get(tag) in options:
        return _REQUIRED_IN_COMMON_IODS[tag]
    if nested and "U" in options:
        return "U"
    return "X" if "X" in options else options[0]


#: The resolved action of every attribute of :data:`BASIC_PROFILE`, at the top level of a dataset.
TOP_LEVEL_ACTIONS: dict[int, str] = {tag: resolve_action(entry.action, tag) for tag, entry in BASIC_PROFILE.items()}
#: The resolved action of every attribute of :data:`BASIC_PROFILE`, inside a sequence item.
NESTED_ACTIONS: dict[int, str] = {
    tag: resolve_action(entry.action, tag, nested=True) for tag, entry in BASIC_PROFILE.items()
}
