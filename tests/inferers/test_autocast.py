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

import torch

from monai_jepa.inferers import AutocastInferer


def test_autocast_inferer_runs_bf16_on_the_cpu_and_fp32_when_off():
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    out = AutocastInferer("cpu", amp=True)(x, net)
    assert out.dtype == torch.bfloat16 and out.shape == (2, 3)
    plain = AutocastInferer("cpu", amp=False)(x, net)
    assert plain.dtype == torch.float32 and torch.equal(plain, net(x))
    assert torch.allclose(out.float(), plain, atol=0.05)
