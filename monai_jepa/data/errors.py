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
"""The documented errors of the data layer.

Every reader, datalist builder and check raises one of these (all subclasses of :class:`DataError`, itself a
``ValueError``), with a message that names the file or key and says what was expected, so that callers and the
``skip_bad`` modes can catch exactly the project's data problems and nothing else.
"""

from __future__ import annotations

__all__ = [
    "DataError",
    "MissingFileError",
    "UnreadableFileError",
    "InvalidImageError",
    "ShapeMismatchError",
    "LayoutError",
    "EmptyDatasetError",
    "BurnedInAnnotationError",
]


class DataError(ValueError):
    """Base class of the data errors; carries the offending ``path`` (or key) when there is one."""

    def __init__(self, message: str, path: object | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)


class MissingFileError(DataError, FileNotFoundError):
    """A file or folder that the layout requires does not exist (e.g. a label without its image)."""


class UnreadableFileError(DataError):
    """A file exists but cannot be decoded (truncated or corrupt DICOM / NIfTI / image / CSV)."""


class InvalidImageError(DataError):
    """Decoded image content is unusable: NaN/inf voxels, wrong dimensionality, wrong channel count."""


class ShapeMismatchError(DataError):
    """Images that must agree (sequences of one study, image and label) differ in shape, spacing or affine."""


class LayoutError(DataError):
    """A dataset folder or table does not follow the expected layout (missing column, unknown key, bad split)."""


class EmptyDatasetError(DataError):
    """A folder or table holds no usable case."""


class BurnedInAnnotationError(DataError):
    """A DICOM file declares burned-in annotations (patient data in the pixels); refused unless overridden."""
