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
"""The state of one de-identification run: UID map, pseudonyms, date offsets and options (:class:`DeidContext`)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Union

from monai.utils import look_up_option, optional_import

from monai_jepa.utils.module import require_package

RE_VALID_UID_PREFIX, _ = optional_import("pydicom.uid", name="RE_VALID_UID_PREFIX")
generate_uid, _ = optional_import("pydicom.uid", name="generate_uid")

__all__ = ["DateShift", "AUTO_SHIFT_RANGE", "DeidContext"]

#: ``"auto"`` date offsets are drawn in ``[-AUTO_SHIFT_RANGE[1], -AUTO_SHIFT_RANGE[0]]`` days.
AUTO_SHIFT_RANGE = (365, 3652)

DateShift = Union[int, Literal["auto"], None]

_EXACT_PRIVATE = re.compile(r"^\(?\s*([0-9A-Fa-f]{4})\s*,?\s*([0-9A-Fa-f]{4})\s*\)?$")
_CREATOR_PRIVATE = re.compile(r'^\(?\s*([0-9A-Fa-f]{4})\s*,\s*"?([^",]+?)"?\s*,\s*([0-9A-Fa-f]{2})\s*\)?$')


@dataclass
class DeidContext:
    """The state that keeps one de-identification run consistent across files.

    It holds the UID map (original -> new, one-to-one), the per-patient pseudonyms and date offsets, and the run's
    options. Pass the same context to :func:`~monai_jepa.apps.deid.anonymize_dataset` for every dataset of a run.

    Args:
        salt: secret mixed into every hash (UIDs, pseudonyms, "auto" date offsets): the same salt gives the same
            output, so keep it private. ``None`` draws a random salt, so runs cannot be linked.
        uid_root: UID prefix of the new UIDs, ending with ``"."`` (at most 54 characters); new UIDs are
            ``generate_uid(prefix=uid_root, entropy_srcs=[salt, original])``. ``None`` builds ``"2.25.<int>"`` UIDs from
            a UUID derived from the salt and the original UID.
        date_shift_days: ``None`` removes or empties dates as the profile says; an int shifts every DA and DT value
            by that many days (times are kept); ``"auto"`` shifts by a per-patient offset in [-3652, -365] days
            derived from the salt and the original Patient ID. Patient's Birth Date is always emptied.
        keep_private_tags: private attributes to keep: exact tags ``"gggg,eeee"`` (or ``"(gggg,eeee)"``,
            ``"ggggeeee"``) or creator-qualified ``'gggg,"CREATOR",ee'`` (``ee``: the element's last two hex digits).
            Their private creator elements are kept with them. Everything else in odd groups is removed.
        allow_burned_in: de-identify files that declare ``BurnedInAnnotation == "YES"`` instead of refusing them.

    The run's state is public: ``uid_map`` (original -> new UID), ``pseudonyms`` and ``date_offsets`` (per patient
    key), and ``warnings`` (messages about possibly burned-in pixels). Keep them secret like the salt.

    Raises:
        ValueError: a bad salt, UID root, date shift or keep rule.

    Example::

        ctx = DeidContext(salt="project-secret", date_shift_days="auto")
        for ds in datasets:
            changes = anonymize_dataset(ds, ctx)
    """

    salt: str | None = None
    uid_root: str | None = None
    date_shift_days: DateShift = None
    keep_private_tags: Sequence[str] = ()
    allow_burned_in: bool = False
    uid_map: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    pseudonyms: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    date_offsets: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    warnings: list[str] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.salt is None:
            self.salt = secrets.token_hex(16)
        elif not isinstance(self.salt, str):
            raise ValueError(f"salt must be a str or None, got {type(self.salt).__name__}.")
        if self.uid_root is not None:
            require_package("pydicom", "monai_jepa.apps.deid.DeidContext", "new UIDs under `uid_root`")
        if self.uid_root is not None and (len(self.uid_root) > 54 or not re.match(RE_VALID_UID_PREFIX, self.uid_root)):
            raise ValueError(
                f"uid_root must be a valid UID prefix ending with '.' of at most 54 characters, got {self.uid_root!r}."
            )
        shift = self.date_shift_days
        if isinstance(shift, str):
            self.date_shift_days = look_up_option(shift, ("auto",))
        elif shift is not None and (isinstance(shift, bool) or not isinstance(shift, int)):
            raise ValueError(f"date_shift_days must be an int, 'auto' or None, got {shift!r}.")
        if isinstance(self.keep_private_tags, str):
            raise ValueError(
                f"keep_private_tags must be a sequence of tag strings, got the str {self.keep_private_tags!r}."
            )
        self.keep_private_tags = tuple(self.keep_private_tags)
        self._exact_private, self._creator_private = _parse_private_rules(self.keep_private_tags)
        self._new_uids: set[str] = set(self.uid_map.values())

    @property
    def shifts_dates(self) -> bool:
        """Whether DA / DT values are shifted rather than removed or emptied."""
        return self.date_shift_days is not None

    def _digest(self, domain: str, value: str) -> bytes:
        return hmac.new(str(self.salt).encode(), f"{domain}\x00{value}".encode(), hashlib.sha256).digest()

    def map_uid(self, uid: str) -> str:
        """Return the new UID of ``uid``: the same one every time within this context, distinct for distinct UIDs.

        Args:
            uid: the original UID (surrounding spaces and trailing nulls are ignored).

        Returns:
            The new UID.

        Raises:
            ValueError: the new UID was already produced for another UID (the mapping would not be one-to-one).
        """
        uid = str(uid).strip().rstrip("\x00")
        new = self.uid_map.get(uid)
        if new is None:
            if self.uid_root is not None:
                new = str(generate_uid(prefix=self.uid_root, entropy_srcs=[str(self.salt), uid]))
            else:
                new = f"2.25.{uuid.UUID(bytes=self._digest('uid', uid)[:16], version=4).int}"
            if new in self._new_uids:  # a hash collision, or a UID that was already a replacement
                raise ValueError(f"UID mapping is not one-to-one: {new} would be produced twice; use another salt.")
            self.uid_map[uid] = new
            self._new_uids.add(new)
        return new

    def pseudonym(self, patient_key: str) -> str:
        """Return the pseudonym (Patient ID and Patient's Name) of the patient identified by ``patient_key``.

        Args:
            patient_key: the patient's key (``"id:<PatientID>"``, or ``"name:<PatientName>"`` without an ID).

        Returns:
            ``"ANON"`` followed by 12 hex digits of a keyed hash of the key.
        """
        if patient_key not in self.pseudonyms:
            self.pseudonyms[patient_key] = "ANON" + self._digest("patient", patient_key).hex()[:12].upper()
        return self.pseudonyms[patient_key]

    def date_offset(self, patient_key: str) -> int:
        """Return the date shift in days of the patient identified by ``patient_key`` (0 without date shifting).

        Args:
            patient_key: the patient's key, as for :meth:`pseudonym`.

        Returns:
            The offset in days: ``date_shift_days`` itself when it is an int, a keyed-hash draw in [-3652, -365] for
            ``"auto"``.
        """
        if self.date_shift_days is None:
            return 0
        if patient_key not in self.date_offsets:
            if self.date_shift_days == "auto":
                low, high = AUTO_SHIFT_RANGE
                draw = int.from_bytes(self._digest("date", patient_key)[:8], "big")
                self.date_offsets[patient_key] = -(low + draw % (high - low + 1))
            else:
                self.date_offsets[patient_key] = int(self.date_shift_days)
        return self.date_offsets[patient_key]

    def keeps_private(self, tag: int, creator: str | None) -> bool:
        """Whether the private attribute ``tag`` (whose block is reserved by ``creator``) is on the keep list.

        Args:
            tag: the private attribute's tag as an int.
            creator: the value of its private creator element, ``None`` when unknown.

        Returns:
            True when an exact rule names ``tag`` or a creator-qualified rule names its group, creator and element.
        """
        if tag in self._exact_private:
            return True
        return creator is not None and (tag >> 16, creator.strip(), tag & 0xFF) in self._creator_private


def _parse_private_rules(rules: Iterable[str]) -> tuple[set[int], set[tuple[int, str, int]]]:
    exact: set[int] = set()
    qualified: set[tuple[int, str, int]] = set()
    for rule in rules:
        text = str(rule).strip()
        if match := _EXACT_PRIVATE.match(text):
            group, elem = int(match[1], 16), int(match[2], 16)
            exact.add((group << 16) | elem)
        elif match := _CREATOR_PRIVATE.match(text):
            group, elem = int(match[1], 16), int(match[3], 16)
            qualified.add((group, match[2].strip(), elem))
        else:
            raise ValueError(
                f"keep_private_tags entries must be 'gggg,eeee' or 'gggg,\"CREATOR\",ee' (hex), got {rule!r}."
            )
        if group % 2 == 0:
            raise ValueError(f"keep_private_tags entry {rule!r} is not private: its group {group:04X} is even.")
    return exact, qualified
