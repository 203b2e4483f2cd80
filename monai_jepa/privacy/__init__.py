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
"""Differentially private (DP-SGD) downstream training on Opacus (``pip install 'monai_jepa[privacy]'``): fine-tuning
and linear probes whose (epsilon, delta) protects the labelled training records; see ``docs/privacy.md``."""

from .dp import ACCOUNTANTS, GRAD_SAMPLE_MODES, DPConfig, DPTraining, compute_epsilon, default_delta, prepare_dp_model
from .probe import dp_linear_probe, fit_dp_linear
from .report import format_privacy_report

__all__ = [
    "ACCOUNTANTS",
    "GRAD_SAMPLE_MODES",
    "DPConfig",
    "DPTraining",
    "compute_epsilon",
    "default_delta",
    "dp_linear_probe",
    "fit_dp_linear",
    "format_privacy_report",
    "prepare_dp_model",
]
