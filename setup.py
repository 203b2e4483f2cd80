# Copyright (c) monai_jepa contributors
# Licensed under the Apache License, Version 2.0; see LICENSE.
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "monai_jepa" / "__init__.py").read_text()).group(1)

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
        "nibabel>=5.0",
        "pydicom>=2.4",
        "itk>=5.3",
        "SimpleITK>=2.2",
        "fire>=0.5",
        "tensorboard>=2.12",
        "tqdm>=4.60",
        "pyyaml>=6.0",
        "scipy>=1.10",
        "pillow>=9.0",
        "scikit-learn>=1.2",
        "matplotlib>=3.6",
        "h5py>=3.8",
    ],
    extras_require={
        "test": ["pytest>=7.4", "jsonschema>=4.0"],
        "dev": ["pytest>=7.4", "jsonschema>=4.0", "black>=24.0", "isort>=5.12", "flake8>=6.0"],
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
