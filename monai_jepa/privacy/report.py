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
"""The privacy section of an evaluation report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["format_privacy_report"]


def _num(value: Any, fmt: str) -> str:
    if isinstance(value, (list, tuple)):  # differing per run (e.g. per label subset)
        return ", ".join(_num(v, fmt) for v in value)
    return "n/a" if not isinstance(value, (int, float)) else format(value, fmt)


def format_privacy_report(records: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown section listing the (epsilon, delta) of each differentially private record.

    Args:
        records: evaluation records; those with an ``epsilon`` are listed.

    Returns:
        the Markdown text (empty when no record has an ``epsilon``).
    """
    private = [r for r in records if r.get("epsilon") is not None]
    if not private:
        return ""
    lines = [
        "",
        "## Differential privacy",
        "",
        "DP-SGD (Opacus; Poisson sampling, per-record gradient clipping, Gaussian noise). The guarantee covers the "
        "labelled training records of each run, not the pretraining data, the validation data used for model "
        "selection, nor the test data (see docs/privacy.md).",
        "",
        "| method | protocol | labels | epsilon | delta | noise multiplier | max grad norm | accountant | AUC | acc |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in private:
        lines.append(
            f"| {r.get('method')} | {r.get('protocol')} | {_num(r.get('n_labels'), '.0f')} | "
            f"{_num(r.get('epsilon'), '.3g')} | {_num(r.get('delta'), '.2g')} | "
            f"{_num(r.get('noise_multiplier'), '.3g')} | {_num(r.get('max_grad_norm'), 'g')} | "
            f"{r.get('accountant')} | {_num(r.get('auc'), '.3f')} | {_num(r.get('acc'), '.3f')} |"
        )
    return "\n".join(lines) + "\n"
