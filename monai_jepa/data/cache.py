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
"""``FailSafeCacheDataset``: MONAI's ``CacheDataset`` whose cache filling leaves no loader thread running on failure."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from monai.data import CacheDataset
from monai.utils import optional_import

tqdm, has_tqdm = optional_import("tqdm", name="tqdm")

__all__ = ["FailSafeCacheDataset"]


class FailSafeCacheDataset(CacheDataset):
    """MONAI's ``CacheDataset`` (same arguments, same cached items) whose cache filling stops cleanly on a bad item.

    MONAI fills the cache with a ``multiprocessing.pool.ThreadPool``. When one item fails to load, the error reaches
    the caller while the pool's other threads are still loading items (``ThreadPool.terminate`` does not wait for
    threads), and if the process then exits (a bundle run stopping on a bad file), a thread still inside native code
    is torn down and the process aborts (``terminate called without an active exception``, exit status 134) after the
    error message. Here the items are loaded by a ``ThreadPoolExecutor``: on the first failure the queued items are
    cancelled and the running ones are waited for, then the error is raised, so the process exits with the error
    alone.

    Example::

        ds = FailSafeCacheDataset(items, transform, cache_rate=1.0, num_workers=4, progress=False)
    """

    def _fill_cache(self, indices=None) -> list:
        if self.cache_num <= 0:
            return []
        if indices is None:
            indices = list(range(self.cache_num))
        executor = ThreadPoolExecutor(max_workers=max(1, int(self.num_workers or 1)))
        try:
            loaded = executor.map(self._load_cache_item, indices)
            if self.progress and has_tqdm:
                loaded = tqdm(loaded, total=len(indices), desc="Loading dataset")
            return list(loaded)
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
