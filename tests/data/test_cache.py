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

import threading
import time

import pytest
import torch
from monai.data import CacheDataset
from monai.transforms import Lambdad

from monai_jepa.data import FailSafeCacheDataset


def _slow_load(x):
    if x == -1:
        raise ValueError("item -1 cannot be loaded")
    time.sleep(0.05)
    return torch.tensor([float(x)])


def test_same_cache_as_monai():
    items = [{"image": i} for i in range(6)]
    transform = Lambdad("image", _slow_load)
    ours = FailSafeCacheDataset(items, transform, cache_rate=1.0, num_workers=3, progress=False)
    theirs = CacheDataset(items, transform, cache_rate=1.0, num_workers=3, progress=False)
    assert [d["image"].item() for d in ours] == [d["image"].item() for d in theirs] == list(map(float, range(6)))
    half = FailSafeCacheDataset(items, transform, cache_rate=0.5, num_workers=2, progress=False)
    assert len(half._cache) == 3 and [d["image"].item() for d in half] == list(map(float, range(6)))


def test_a_failing_item_leaves_no_loader_thread_running():
    """The error reaches the caller only once every loader thread has stopped (MONAI's ThreadPool leaves them
    loading, and a process that exits then can abort in native code)."""
    before = set(threading.enumerate())
    items = [{"image": -1}] + [{"image": i} for i in range(40)]
    with pytest.raises(RuntimeError, match="applying transform") as err:
        FailSafeCacheDataset(items, Lambdad("image", _slow_load), cache_rate=1.0, num_workers=4, progress=False)
    assert "item -1 cannot be loaded" in repr(err.value.__cause__)
    assert set(threading.enumerate()) <= before
