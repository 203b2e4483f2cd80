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

import io
import random

import numpy as np
import pytest
import torch
from monai.transforms import RandGaussianNoise

from monai_jepa.engines import capture_rng_state, derive_seed, restore_rng_state, seed_global_rngs
from monai_jepa.transforms import BatchMultiView


def _draw(gens):
    torch_gen, np_gen, np_rs, py_rng, views, rand_tf, module = gens
    return [
        torch.rand(3).tolist(),
        np.random.rand(3).tolist(),
        [random.random() for _ in range(3)],
        torch.rand(3, generator=torch_gen).tolist(),
        np_gen.random(3).tolist(),
        np_rs.rand(3).tolist(),
        [py_rng.random() for _ in range(3)],
        torch.rand(3, generator=views.generator).tolist(),
        rand_tf.R.rand(3).tolist(),
        module.draw(),
    ]


class _Counter:
    """A seedable object exposing state_dict / load_state_dict."""

    def __init__(self):
        self.count = 0

    def draw(self):
        self.count += 1
        return self.count

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


def test_roundtrip_through_weights_only_checkpoint():
    seed_global_rngs(3)
    gens = (
        torch.Generator().manual_seed(1),
        np.random.default_rng(2),
        np.random.RandomState(3),
        random.Random(4),
        BatchMultiView(seed=5),
        RandGaussianNoise().set_random_state(6),
        _Counter(),
    )
    _draw(gens)  # move every state away from its seed
    state = capture_rng_state(gens)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    expected = _draw(gens)
    _draw(gens)
    restore_rng_state(loaded, gens)
    assert _draw(gens) == expected


def test_restore_checks_generators():
    state = capture_rng_state([torch.Generator()])
    with pytest.raises(ValueError, match="1 generator states but 0"):
        restore_rng_state(state, [])
    with pytest.raises(ValueError, match="kind 'torch'"):
        restore_rng_state(state, [random.Random()])
    with pytest.raises(TypeError, match="generators must be"):
        capture_rng_state([object()])
    # global_rngs=False leaves the global streams alone
    torch.manual_seed(0)
    a = torch.rand(2)
    restore_rng_state(capture_rng_state([]), [], global_rngs=False)
    torch.manual_seed(0)
    assert torch.equal(torch.rand(2), a)


def test_derive_seed_mixes_inputs():
    assert derive_seed(0, 1) == derive_seed(0, 1)
    assert len({derive_seed(0, 1), derive_seed(1, 0), derive_seed(0, 1, 0), derive_seed(0, 2)}) == 4
    assert 0 <= derive_seed(2**40, 7) < 2**63
