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
"""Optional dependencies, as in MONAI: modules import them with ``monai.utils.optional_import`` and call
:func:`require_package` where they are used, which raises an ``OptionalImportError`` naming the ``monai_jepa`` extra
that installs the missing package.

The core (``monai_jepa``, ``monai_jepa.losses``, ``monai_jepa.networks``, ``monai_jepa.transforms``,
``monai_jepa.engines``) needs only torch, MONAI, pytorch-ignite, numpy and einops; :data:`OPTIONAL_PACKAGES` lists the
rest and the extra of each (``pip install 'monai_jepa[all]'`` installs them all).
"""

from __future__ import annotations

from typing import Any

from monai.utils import OptionalImportError, optional_import

__all__ = ["OPTIONAL_PACKAGES", "missing_package_message", "require_package"]

#: top-level import name -> (distribution name, the ``monai_jepa`` extra that installs it)
OPTIONAL_PACKAGES: dict[str, tuple[str, str]] = {
    "pydicom": ("pydicom", "dicom"),
    "itk": ("itk", "dicom"),
    "highdicom": ("highdicom", "dicom"),
    "nibabel": ("nibabel", "data"),
    "PIL": ("pillow", "data"),
    "h5py": ("h5py", "data"),
    "scipy": ("scipy", "data"),  # also in [eval]: HD95 (MONAI's surface distances)
    "sklearn": ("scikit-learn", "eval"),
    "matplotlib": ("matplotlib", "eval"),
    "fire": ("fire", "cli"),
    "tensorboard": ("tensorboard", "tensorboard"),
    "tqdm": ("tqdm", "progress"),
    "av": ("av", "video"),
    "umap": ("umap-learn", "interpret"),
    "opacus": ("opacus", "privacy"),
}


def missing_package_message(module: str, user: str, purpose: str = "", extra: str | None = None) -> str:
    """The error message for a missing optional package, naming the extra that installs it.

    Args:
        module: the module to import, e.g. ``"pydicom"`` or ``"scipy.ndimage"``.
        user: what needs it, e.g. ``"monai_jepa.data.load_dicom"``.
        purpose: what for, e.g. ``"DICOM input"``.
        extra: the extra to name (default: the one :data:`OPTIONAL_PACKAGES` gives).

    Returns:
        e.g. ``"monai_jepa.data.load_dicom needs pydicom for DICOM input: pip install 'monai_jepa[dicom]'"``.
    """
    top = module.split(".")[0]
    package, default_extra = OPTIONAL_PACKAGES.get(top, (top, "all"))
    what = f" for {purpose}" if purpose else ""
    return (
        f"{user} needs {package}{what}: pip install 'monai_jepa[{extra or default_extra}]' (or pip install {package})"
    )


def require_package(module: str, user: str, purpose: str = "", extra: str | None = None) -> Any:
    """Import ``module`` (an optional dependency) or raise an ``OptionalImportError`` naming the extra to install.

    Call it where the package is used, before any ``try`` that would turn the import error into another error.

    Args:
        module: the module to import, e.g. ``"pydicom"`` or ``"scipy.ndimage"``.
        user: what needs it, e.g. ``"monai_jepa.data.load_dicom"``.
        purpose: what for, e.g. ``"DICOM input"``.
        extra: the extra to name (default: the one :data:`OPTIONAL_PACKAGES` gives).

    Returns:
        the imported module.

    Raises:
        OptionalImportError: (an ``ImportError``) when ``module`` cannot be imported.

    Example::

        pydicom = require_package("pydicom", "monai_jepa.data.read_dicom", "DICOM input")
    """
    mod, has = optional_import(module)
    if not has:
        raise OptionalImportError(missing_package_message(module, user, purpose, extra))
    return mod
