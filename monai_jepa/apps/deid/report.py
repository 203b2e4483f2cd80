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
"""What a de-identification run changed: one :class:`DeidChange` per attribute, and the rows of the CSV report.

The report names attributes and actions only, never an original value, so it can be kept next to the outputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["CHANGE_ACTIONS", "REPORT_COLUMNS", "DeidChange", "tag_str", "report_rows"]

#: The values of :attr:`DeidChange.action`.
CHANGE_ACTIONS = ("remove", "remove_private", "empty", "dummy", "replace_uid", "pseudonym", "shift_date", "set")
#: The columns of the CSV report, in order.
REPORT_COLUMNS = ("file", "tag", "keyword", "action", "path")


def tag_str(tag: int) -> str:
    """Format a tag given as an int (``0xGGGGEEEE``) as ``"(GGGG,EEEE)"``.

    Args:
        tag: the tag.

    Returns:
        The tag in DICOM notation, upper-case hex.
    """
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


@dataclass(frozen=True)
class DeidChange:
    """One changed attribute (never its value).

    Attributes:
        tag: the attribute's tag as ``"(GGGG,EEEE)"``.
        keyword: its DICOM keyword (empty for private attributes).
        action: what was done: ``"remove"``, ``"remove_private"``, ``"empty"``, ``"dummy"``, ``"replace_uid"``,
            ``"pseudonym"``, ``"shift_date"`` or ``"set"`` (de-identification attributes written by the anonymizer).
        path: where the attribute sits: ``""`` at the top level, else the enclosing sequences and item indices, e.g.
            ``"(0008,1115)[0].(0008,114A)[2]"``.
    """

    tag: str
    keyword: str
    action: str
    path: str = ""


def report_rows(file: str, changes: Iterable[DeidChange]) -> list[tuple[str, str, str, str, str]]:
    """The CSV report rows (:data:`REPORT_COLUMNS`) of one output file.

    Args:
        file: the output's name relative to the output folder (POSIX separators).
        changes: its changes, as returned by :func:`~monai_jepa.apps.deid.anonymize_dataset`.

    Returns:
        One ``(file, tag, keyword, action, path)`` tuple per change, in order.
    """
    return [(file, change.tag, change.keyword, change.action, change.path) for change in changes]
