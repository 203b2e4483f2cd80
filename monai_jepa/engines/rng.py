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
"""Capture, restore and derive random-number-generator states, in a form ``torch.load(weights_only=True)`` accepts."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["capture_rng_state", "restore_rng_state", "seed_global_rngs", "derive_seed"]


def _to_safe(obj: Any) -> Any:
    """Recursively turn numpy arrays / scalars and tuples into tensors, Python scalars and lists."""
    if isinstance(obj, np.ndarray):
        return {
            "__ndarray__": torch.from_numpy(obj.astype(np.int64) if obj.dtype.kind in "iu" else obj.copy()),
            "dtype": str(obj.dtype),
        }
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Mapping):
        return {str(k): _to_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_safe(v) for v in obj]
    return obj


def _from_safe(obj: Any) -> Any:
    """Inverse of :func:`_to_safe` (lists stay lists)."""
    if isinstance(obj, Mapping):
        if "__ndarray__" in obj:
            return obj["__ndarray__"].numpy().astype(obj["dtype"])
        return {k: _from_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_safe(v) for v in obj]
    return obj


def _legacy_numpy_state(state: tuple) -> dict[str, Any]:
    """``np.random.RandomState.get_state()`` tuple -> dict of tensors and Python scalars."""
    name, keys, pos, has_gauss, cached = state
    return {
        "name": str(name),
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def _legacy_numpy_tuple(state: Mapping[str, Any]) -> tuple:
    keys = state["keys"].numpy().astype(np.uint32)
    return state["name"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"]


def _python_state(state: tuple) -> dict[str, Any]:
    version, internal, gauss_next = state
    return {"version": int(version), "internal": [int(v) for v in internal], "gauss_next": gauss_next}


def _python_tuple(state: Mapping[str, Any]) -> tuple:
    return state["version"], tuple(state["internal"]), state["gauss_next"]


def _generator_state(gen: Any) -> dict[str, Any]:
    """The state of one seedable object as a ``weights_only``-safe dict."""
    if isinstance(gen, torch.Generator):
        return {"kind": "torch", "state": gen.get_state()}
    if isinstance(gen, np.random.Generator):
        return {"kind": "numpy_generator", "state": _to_safe(gen.bit_generator.state)}
    if isinstance(gen, np.random.RandomState):
        return {"kind": "numpy_random_state", "state": _legacy_numpy_state(gen.get_state())}
    if isinstance(gen, random.Random):
        return {"kind": "python", "state": _python_state(gen.getstate())}
    if isinstance(getattr(gen, "generator", None), torch.Generator):  # e.g. BatchMultiView
        return {"kind": "attr_generator", "state": gen.generator.get_state()}
    if isinstance(getattr(gen, "R", None), np.random.RandomState):  # MONAI Randomizable
        return {"kind": "randomizable", "state": _legacy_numpy_state(gen.R.get_state())}
    if callable(getattr(gen, "state_dict", None)) and callable(getattr(gen, "load_state_dict", None)):
        return {"kind": "state_dict", "state": _to_safe(gen.state_dict())}
    raise TypeError(
        "generators must be torch.Generator, numpy Generator / RandomState, random.Random, an object with a "
        "torch.Generator `generator` attribute, a MONAI Randomizable or have state_dict/load_state_dict, "
        f"got {type(gen)}."
    )


def _set_generator_state(gen: Any, saved: Mapping[str, Any]) -> None:
    expected = _generator_state(gen)["kind"]
    if saved["kind"] != expected:
        raise ValueError(
            f"saved generator state is of kind '{saved['kind']}' but the generator is of kind '{expected}'."
        )
    state = saved["state"]
    if expected == "torch":
        gen.set_state(state)
    elif expected == "numpy_generator":
        gen.bit_generator.state = _from_safe(state)
    elif expected == "numpy_random_state":
        gen.set_state(_legacy_numpy_tuple(state))
    elif expected == "python":
        gen.setstate(_python_tuple(state))
    elif expected == "attr_generator":
        gen.generator.set_state(state)
    elif expected == "randomizable":
        gen.R.set_state(_legacy_numpy_tuple(state))
    else:
        gen.load_state_dict(_from_safe(state))


def capture_rng_state(generators: Sequence[Any] = ()) -> dict[str, Any]:
    """Snapshot the global RNGs (torch CPU, CUDA when available, numpy, Python ``random``) and some generators.

    Every value is a tensor, a Python scalar, a string, a list or a dict, so the result can be saved in a checkpoint
    that loads with ``torch.load(..., weights_only=True)``.

    Args:
        generators: extra seedable objects (``torch.Generator``, numpy ``Generator`` / ``RandomState``,
            ``random.Random``, objects with a ``torch.Generator`` attribute ``generator`` such as
            :class:`monai_jepa.transforms.BatchMultiView`, MONAI ``Randomizable``, or objects with
            ``state_dict`` / ``load_state_dict``).

    Returns:
        a dict to pass to :func:`restore_rng_state`.

    Example::

        >>> state = capture_rng_state()
        >>> a = torch.rand(3)
        >>> restore_rng_state(state)
        >>> torch.equal(a, torch.rand(3))
        True
    """
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": _legacy_numpy_state(np.random.get_state()),
        "python": _python_state(random.getstate()),
        "generators": [_generator_state(g) for g in generators],
    }


def restore_rng_state(state: Mapping[str, Any], generators: Sequence[Any] = (), global_rngs: bool = True) -> None:
    """Restore a snapshot taken by :func:`capture_rng_state`.

    Args:
        state: the snapshot.
        generators: the same objects, in the same order, as given to :func:`capture_rng_state`.
        global_rngs: also restore the global torch / CUDA / numpy / ``random`` states (default True).

    Raises:
        ValueError: when the number or the kinds of ``generators`` differ from the snapshot.
    """
    saved = list(state.get("generators", []))
    if len(saved) != len(generators):
        raise ValueError(
            f"the RNG snapshot holds {len(saved)} generator states but {len(generators)} generators were given."
        )
    for gen, gen_state in zip(generators, saved):
        _set_generator_state(gen, gen_state)
    if not global_rngs:
        return
    torch.set_rng_state(state["torch"].cpu())
    cuda_states = list(state.get("cuda", []))
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])
    np.random.set_state(_legacy_numpy_tuple(state["numpy"]))
    random.setstate(_python_tuple(state["python"]))


def derive_seed(*entropy: int) -> int:
    """A well-mixed 63-bit seed from a few non-negative integers (e.g. ``(seed, epoch, rank)``).

    Unlike ``seed + epoch``, nearby inputs give unrelated seeds, so run A's epoch 1 never replays run B's epoch 0.
    """
    values = [len(entropy)] + [int(e) & 0xFFFFFFFFFFFFFFFF for e in entropy]  # length first: (a, b) != (a, b, 0)
    words = np.random.SeedSequence(values).generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def seed_global_rngs(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's global generator and Python ``random`` from one integer."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
