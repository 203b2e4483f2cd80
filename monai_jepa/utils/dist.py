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
"""Small torch.distributed helpers that are safe to call in single-process runs."""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["is_dist", "get_world_size", "get_rank", "all_reduce_sum", "broadcast_int"]


def is_dist() -> bool:
    """Whether torch.distributed is available and a default process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    """Number of processes in the default group (1 when not distributed)."""
    return dist.get_world_size() if is_dist() else 1


def get_rank() -> int:
    """Rank of this process in the default group (0 when not distributed)."""
    return dist.get_rank() if is_dist() else 0


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Autograd-aware sum over all ranks; the identity when not distributed.

    The backward pass all-reduces (sums) the incoming gradients, so when every rank evaluates the same loss on the
    reduced value, each rank's local gradient is ``world_size`` times the single-process gradient, which DDP's
    gradient averaging turns back into the exact single-process gradient. A plain (non-autograd) ``all_reduce`` would
    instead scale the gradient by ``1 / world_size``.

    Args:
        x: tensor of any shape, identical shape on every rank.

    Returns:
        the element-wise sum over ranks, same shape as ``x``.
    """
    if get_world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(x, op=dist.ReduceOp.SUM)


def broadcast_int(values: list[int], src: int = 0) -> list[int]:
    """Broadcast a short list of integers from rank ``src`` (returned unchanged when not distributed)."""
    if get_world_size() == 1:
        return list(values)
    backend = dist.get_backend()
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    t = torch.tensor(values, dtype=torch.int64, device=device)
    dist.broadcast(t, src=src)
    return [int(v) for v in t.tolist()]
