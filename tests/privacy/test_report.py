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

import pytest

pytest.importorskip("opacus")
from monai_jepa.privacy import format_privacy_report  # noqa: E402


def test_privacy_table_lists_private_records_only():
    records = [
        {"method": "lejepa", "protocol": "linear", "auc": 0.9},
        {
            "method": "lejepa",
            "protocol": "dp_linear",
            "n_labels": 4708,
            "epsilon": 2.987,
            "delta": 2.1e-5,
            "noise_multiplier": 1.234,
            "max_grad_norm": 1.0,
            "accountant": "rdp",
            "auc": 0.91234,
            "acc": 0.8,
        },
        {"method": "scratch", "protocol": "dp_fine_tune", "epsilon": [2.9, 3.0], "delta": [1e-4, 2e-5]},
    ]
    text = format_privacy_report(records)
    lines = text.splitlines()
    assert "## Differential privacy" in lines
    assert "| lejepa | dp_linear | 4708 | 2.99 | 2.1e-05 | 1.23 | 1 | rdp | 0.912 | 0.800 |" in lines
    assert "| scratch | dp_fine_tune | n/a | 2.9, 3 | 0.0001, 2e-05 | n/a | n/a | None | n/a | n/a |" in lines
    assert "| lejepa | linear |" not in text
    assert format_privacy_report(records[:1]) == ""
