# Copyright (c) monai_jepa contributors
# Licensed under the Apache License, Version 2.0; see LICENSE.
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "monai_jepa" / "__init__.py").read_text()).group(1)

# optional dependencies by feature; the core (torch, MONAI, pytorch-ignite, numpy, einops) needs none of them
EXTRAS = {
    "dicom": ["pydicom>=2.4", "itk>=5.3", "highdicom>=0.22"],  # DICOM input, de-identification, DICOM SEG output
    "data": ["nibabel>=5.0", "pillow>=9.0", "h5py>=3.8", "scipy>=1.10"],  # NIfTI, PNG / JPEG, HDF5, demo volumes
    "eval": ["scikit-learn>=1.2", "scipy>=1.10", "matplotlib>=3.6"],  # probes, metrics, HD95, plots
    "cli": ["fire>=0.5"],  # python -m monai_jepa, python -m monai.bundle
    "tensorboard": ["tensorboard>=2.12"],
    "progress": ["tqdm>=4.60"],  # JEPAProgressBar
    "video": ["av>=12"],  # AVI / MP4 clips (PyAV, FFmpeg)
    "privacy": ["opacus>=1.5"],  # DP-SGD probes and fine-tuning
    "interpret": ["umap-learn>=0.5"],  # UMAP embedding maps (PCA, attention, error maps and attributions need none)
    "federated": ["flwr[simulation]>=1.21"],  # FedAvg simulation of monai_jepa.fl (Flower + Ray)
}
ALL_EXTRAS = sorted({req for reqs in EXTRAS.values() for req in reqs})
# the test extra leaves out what only one optional code path needs and is heavy to install or import (numba for UMAP;
# Ray for the Flower simulation, which also pins protobuf); their tests skip without them
TEST_EXTRAS = sorted(set(ALL_EXTRAS) - set(EXTRAS["interpret"]) - set(EXTRAS["federated"]))

setup(
    name="monai_jepa",
    version=VERSION,
    description="Joint-Embedding Predictive Architectures (LeJEPA, V-JEPA style) for self-supervised medical imaging "
    "with MONAI",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["monai_jepa", "monai_jepa.*"]),
    package_data={"monai_jepa.apps.deid": ["*.csv", "README.md"]},
    install_requires=[
        "torch>=2.6",
        "monai>=1.5,<1.7",
        "pytorch-ignite>=0.4.11",
        "numpy>=1.26,<3",
        "einops>=0.7",
    ],
    # the optional dependencies, as in MONAI: imported with monai.utils.optional_import, and the error raised
    # without one names its extra (monai_jepa.utils.module.OPTIONAL_PACKAGES)
    extras_require={
        **EXTRAS,
        "all": ALL_EXTRAS,
        # jsonschema and pyyaml: MONAI's verify_metadata and its reader of a bundle's large_files.yml (Zoo checks)
        "test": TEST_EXTRAS + ["pytest>=7.4", "jsonschema>=4.0", "pyyaml>=6.0", "hypothesis>=6.100"],
        "dev": TEST_EXTRAS
        + ["pytest>=7.4", "jsonschema>=4.0", "pyyaml>=6.0", "hypothesis>=6.100", "black>=24.0", "isort>=5.12"]
        + ["flake8>=6.0"],
        "deid-compare": ["deid", "dicognito"],
        "bench": ["lightly"],
    },
    entry_points={"console_scripts": ["monai_jepa = monai_jepa.cli:main"]},
    classifiers=[
        "License :: OSI Approved :: Apache Software License",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Medical Science Apps.",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
