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
"""DICOM de-identification: DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile.

- :mod:`~monai_jepa.apps.deid.profile`: the profile's action table (package data ``ps3_15_basic_profile.csv``) and
  :func:`resolve_action`;
- :mod:`~monai_jepa.apps.deid.context`: :class:`DeidContext`, the state that keeps a run consistent across files;
- :mod:`~monai_jepa.apps.deid.anonymizer`: :func:`anonymize_dataset` (one dataset) and :func:`anonymize` (a file or
  a folder tree);
- :mod:`~monai_jepa.apps.deid.reader` and :mod:`~monai_jepa.apps.deid.writer`: checked reading, atomic writing;
- :mod:`~monai_jepa.apps.deid.report`: :class:`DeidChange` and the CSV report rows.

Example::

    from monai_jepa.apps.deid import anonymize

    summary = anonymize("raw/", "anon/", salt="secret", date_shift_days="auto", report_csv="anon_report.csv")
"""

from .anonymizer import BURNED_IN_MODALITIES, anonymize, anonymize_dataset, pseudonymized_path
from .context import AUTO_SHIFT_RANGE, DateShift, DeidContext
from .profile import (
    ACTIONS,
    BASIC_PROFILE,
    BASIC_PROFILE_TABLE,
    EXTRA_ATTRIBUTES,
    EXTRA_ATTRIBUTES_FILE,
    PROFILE_FILE,
    ProfileEntry,
    load_profile_table,
    resolve_action,
)
from .reader import DICOM_SUFFIXES, check_complete, looks_like_dicom, read_dicom
from .report import CHANGE_ACTIONS, REPORT_COLUMNS, DeidChange, report_rows
from .writer import save_dataset, write_dicom, write_mapping_csv, write_report_csv

__all__ = [
    "ACTIONS",
    "AUTO_SHIFT_RANGE",
    "BASIC_PROFILE",
    "BASIC_PROFILE_TABLE",
    "BURNED_IN_MODALITIES",
    "CHANGE_ACTIONS",
    "DICOM_SUFFIXES",
    "DateShift",
    "DeidChange",
    "DeidContext",
    "EXTRA_ATTRIBUTES",
    "EXTRA_ATTRIBUTES_FILE",
    "PROFILE_FILE",
    "ProfileEntry",
    "REPORT_COLUMNS",
    "anonymize",
    "anonymize_dataset",
    "pseudonymized_path",
    "check_complete",
    "load_profile_table",
    "looks_like_dicom",
    "read_dicom",
    "report_rows",
    "resolve_action",
    "save_dataset",
    "write_dicom",
    "write_mapping_csv",
    "write_report_csv",
]
