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
"""DP-SGD for downstream training (fine-tuning, probes) on Opacus: settings, model preparation, wrapping of model /
optimiser / data loader, and the (epsilon, delta) spent.

The guarantee is record-level (epsilon, delta)-differential privacy with respect to the labelled training set of the
run: each record's gradient is clipped to ``max_grad_norm`` (flat clipping over all trainable parameters), Gaussian
noise of standard deviation ``noise_multiplier * max_grad_norm`` is added to each summed batch gradient, and batches
are drawn by Poisson sampling (each record independently with probability ``sample_rate = 1 / len(loader)``), which
is what the accountant assumes. Everything else the run touches (the pretrained encoder, validation data used for
model selection, normalisation statistics) is outside the guarantee; see ``docs/privacy.md``.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn as nn
from monai.utils import look_up_option, optional_import
from torch.utils.data import DataLoader

from monai_jepa.utils.module import require_package

PrivacyEngine, _ = optional_import("opacus", name="PrivacyEngine")
ModuleValidator, _ = optional_import("opacus.validators", name="ModuleValidator")
create_accountant, _ = optional_import("opacus.accountants", name="create_accountant")

__all__ = [
    "ACCOUNTANTS",
    "GRAD_SAMPLE_MODES",
    "DPConfig",
    "DPTraining",
    "compute_epsilon",
    "default_delta",
    "prepare_dp_model",
]

#: privacy accountants: Renyi DP (Mironov 2017; Opacus's ``RDPAccountant``) or the numerically composed privacy loss
#: random variable (Gopi et al. 2021; ``PRVAccountant``, tighter, i.e. a smaller epsilon for the same noise)
ACCOUNTANTS = ("rdp", "prv")
#: how Opacus computes per-sample gradients: ``"ew"`` (PyTorch's expanded weights: no module hooks, so in-place
#: operations such as the residual ``out += x`` of MONAI's ResNet are fine; Linear, Conv, GroupNorm, LayerNorm,
#: InstanceNorm and Embedding layers), ``"hooks"`` (module hooks: more layer types, e.g. DP-LSTM and
#: multi-head attention, but no in-place operation on a hooked layer's output) or ``"functorch"``
GRAD_SAMPLE_MODES = ("ew", "hooks", "functorch")
logger = logging.getLogger(__name__)


def _opacus(user: str) -> None:
    require_package("opacus", user, "DP-SGD", extra="privacy")


def default_delta(num_samples: int) -> float:
    """The default delta of a training set of ``num_samples`` records: ``1 / (10 * num_samples)``.

    Delta bounds the probability that the epsilon guarantee fails; it must be well below ``1 / N`` (a mechanism that
    publishes one random record in full is (0, 1/N)-DP), and one tenth of that is a common choice.

    Raises:
        ValueError: when ``num_samples`` is not a positive integer.
    """
    if int(num_samples) != num_samples or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}.")
    return 1.0 / (10.0 * num_samples)


@dataclass(frozen=True)
class DPConfig:
    """Settings of a DP-SGD run; give either ``target_epsilon`` (the noise is calibrated to reach it at the end of the
    planned epochs) or ``noise_multiplier`` (the epsilon follows from the steps taken).

    Args:
        target_epsilon: privacy budget epsilon to reach at the end of training (> 0, finite).
        noise_multiplier: standard deviation of the Gaussian noise relative to ``max_grad_norm`` (> 0).
        delta: delta of the guarantee, in (0, 1) (default: :func:`default_delta` of the training-set size).
        max_grad_norm: bound of each record's gradient norm (flat clipping over all trainable parameters).
        accountant: ``"rdp"`` or ``"prv"`` (see :data:`ACCOUNTANTS`).
        secure_mode: cryptographically secure noise (needs the ``torchcsprng`` package); off, the noise comes from a
            seeded ``torch.Generator`` (reproducible, fine for research, not for a release).
        grad_sample_mode: per-sample gradient computation, see :data:`GRAD_SAMPLE_MODES`.

    Example::

        >>> DPConfig(target_epsilon=3.0, max_grad_norm=1.0)
        >>> DPConfig.from_value({"noise_multiplier": 1.1, "delta": 1e-5})
    """

    target_epsilon: float | None = None
    noise_multiplier: float | None = None
    delta: float | None = None
    max_grad_norm: float = 1.0
    accountant: str = "rdp"
    secure_mode: bool = False
    grad_sample_mode: str = "ew"

    def __post_init__(self) -> None:
        if (self.target_epsilon is None) == (self.noise_multiplier is None):
            raise ValueError(
                "DP-SGD needs exactly one of target_epsilon and noise_multiplier, got "
                f"target_epsilon={self.target_epsilon!r} and noise_multiplier={self.noise_multiplier!r}."
            )
        if self.target_epsilon is not None and not (0 < self.target_epsilon < math.inf):
            raise ValueError(f"target_epsilon must be positive and finite, got {self.target_epsilon!r}.")
        if self.noise_multiplier is not None and not (0 < self.noise_multiplier < math.inf):
            raise ValueError(
                f"noise_multiplier must be positive and finite, got {self.noise_multiplier!r} "
                "(for non-private training, give no DP settings)."
            )
        if self.delta is not None and not (0 < self.delta < 1):
            raise ValueError(f"delta must lie in (0, 1), got {self.delta!r}.")
        if not (0 < self.max_grad_norm < math.inf):
            raise ValueError(f"max_grad_norm must be positive and finite, got {self.max_grad_norm!r}.")
        accountant = str(self.accountant).lower()
        if accountant not in ACCOUNTANTS:
            raise ValueError(f"accountant must be one of {list(ACCOUNTANTS)}, got {self.accountant!r}.")
        object.__setattr__(self, "accountant", accountant)
        if self.grad_sample_mode not in GRAD_SAMPLE_MODES:
            raise ValueError(
                f"grad_sample_mode must be one of {list(GRAD_SAMPLE_MODES)}, got {self.grad_sample_mode!r}."
            )

    @classmethod
    def from_value(cls, value: DPConfig | Mapping[str, Any] | None) -> DPConfig | None:
        """A :class:`DPConfig` from a config mapping (e.g. the ``dp`` dict of a bundle config), ``None`` for none.

        Raises:
            ValueError: on an unknown key (naming it and the known keys) or a value of the wrong kind.
        """
        if value is None or isinstance(value, DPConfig):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"DP settings must be a dict or a DPConfig, got {type(value).__name__}.")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"unknown DP setting(s) {unknown}; expected keys among {known}.")
        return cls(**dict(value))

    def resolve_delta(self, num_samples: int) -> float:
        """``delta``, or :func:`default_delta` of ``num_samples`` when unset; a delta of ``1 / N`` or more is refused
        (it would allow publishing a record in full)."""
        delta = default_delta(num_samples) if self.delta is None else self.delta
        if delta >= 1.0 / num_samples:
            raise ValueError(f"delta must be below 1 / N = {1.0 / num_samples:.3g} for N = {num_samples}, got {delta}.")
        return delta


def compute_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountant="rdp") -> float:
    """The epsilon of ``steps`` DP-SGD steps with Poisson sampling, from Opacus's accountant.

    Args:
        noise_multiplier: noise standard deviation relative to the clipping norm.
        sample_rate: probability of each record to be in a batch.
        steps: number of optimiser steps.
        delta: delta of the guarantee.
        accountant: ``"rdp"`` or ``"prv"``.

    Returns:
        epsilon (``0.0`` for no step).
    """
    _opacus("monai_jepa.privacy.compute_epsilon")
    if not (0 < sample_rate <= 1):
        raise ValueError(f"sample_rate must lie in (0, 1], got {sample_rate!r}.")
    if not (0 < delta < 1):
        raise ValueError(f"delta must lie in (0, 1), got {delta!r}.")
    if steps == 0:
        return 0.0
    acc = create_accountant(mechanism=look_up_option(accountant, ACCOUNTANTS))
    acc.history = [(float(noise_multiplier), float(sample_rate), int(steps))]
    return float(acc.get_epsilon(delta=delta))


def prepare_dp_model(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """Make ``model`` trainable with per-sample gradients: Opacus's ``ModuleValidator.fix`` replaces the layers that
    mix the records of a batch among the *trainable* modules (BatchNorm -> GroupNorm with ``gcd(32, C)`` groups and
    fresh affine parameters; frozen modules are kept), then ``ModuleValidator.validate`` must pass.

    BatchNorm is not only incompatible with per-sample clipping: its running statistics are computed from the private
    batches without noise, so they would leak. In-place activations (``nn.ReLU(inplace=True)``, as in MONAI's ResNet)
    are switched to out-of-place: they would overwrite the outputs that Opacus's backward hooks need. The other
    weights (e.g. a pretrained encoder's) are kept.

    Args:
        model: the network (its trainable parameters are the ones DP-SGD will train).

    Returns:
        ``(model, changes)``: the fixed model (a copy when a layer was replaced) and one line per changed module,
        e.g. ``"encoder.bn1: BatchNorm2d(64) -> GroupNorm(32 groups, 64 channels)"``.

    Raises:
        ValueError: when the model still has a module Opacus cannot train privately, naming it.
    """
    _opacus("monai_jepa.privacy.prepare_dp_model")
    was_training = model.training
    model.train()  # Opacus validates (and trains) in training mode
    changes: list[str] = []
    if ModuleValidator.validate(model, strict=False):
        before = dict(model.named_modules())
        model = ModuleValidator.fix(model)
        for name, module in model.named_modules():
            old = before.get(name)
            if old is not None and type(old) is not type(module):
                changes.append(f"{name}: {_describe(old)} -> {_describe(module)}")
    for name, module in model.named_modules():
        if getattr(module, "inplace", False) is True:
            module.inplace = False
            changes.append(f"{name}: {type(module).__name__}(inplace=True) -> inplace=False")
    for line in changes:
        logger.info(f"DP-SGD model preparation: {line}")
    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        raise ValueError(f"the model cannot be trained with DP-SGD: {'; '.join(map(str, errors[:5]))}")
    model.train(was_training)
    return model, changes


def _describe(module: nn.Module) -> str:
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return f"{type(module).__name__}({module.num_features})"
    if isinstance(module, nn.GroupNorm):
        return f"GroupNorm({module.num_groups} groups, {module.num_channels} channels)"
    return type(module).__name__


class DPTraining:
    """One DP-SGD run: wraps a model, optimiser and data loader with an ``opacus.PrivacyEngine`` and reports the
    privacy spent.

    Args:
        config: the DP settings (a :class:`DPConfig` or its dict).
        num_samples: number of records of the training set (for the default delta).

    Example::

        dp = DPTraining({"target_epsilon": 3.0}, num_samples=len(train_ds))
        model, _ = prepare_dp_model(model)
        model, optimizer, loader = dp.make_private(model, optimizer, loader, epochs=10, seed=0)
        ...  # train as usual: loss.backward(); optimizer.step()
        print(dp.report())  # {"epsilon": 2.98, "delta": 2.1e-05, "noise_multiplier": ..., "steps": ...}
    """

    def __init__(self, config: DPConfig | Mapping[str, Any], num_samples: int) -> None:
        _opacus("monai_jepa.privacy.DPTraining")
        resolved = DPConfig.from_value(config)
        if resolved is None:
            raise ValueError("DPTraining needs DP settings, got None.")
        self.config = resolved
        self.num_samples = int(num_samples)
        self.delta = resolved.resolve_delta(self.num_samples)
        with warnings.catch_warnings():  # the pseudo-random noise of secure_mode=False is documented in DPConfig
            warnings.filterwarnings("ignore", message="Secure RNG turned off")
            self.engine = PrivacyEngine(accountant=resolved.accountant, secure_mode=resolved.secure_mode)
        self.noise_multiplier: float | None = None
        self.sample_rate: float | None = None

    def make_private(
        self,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        data_loader: DataLoader,
        epochs: int | None = None,
        seed: int = 0,
    ) -> tuple[nn.Module, torch.optim.Optimizer, DataLoader]:
        """Wrap the training objects: the module computes per-sample gradients (``GradSampleModule``), the optimiser
        clips them and adds noise (``DPOptimizer``), the loader draws Poisson batches of expected size
        ``len(dataset) / len(data_loader)`` (``DPDataLoader``, seeded by ``seed``; the noise by ``seed + 1``).

        Args:
            module: the model, prepared by :func:`prepare_dp_model`.
            optimizer: its optimiser.
            data_loader: the training loader (its batch size sets the expected batch size).
            epochs: planned epochs; required with ``target_epsilon`` (the noise is calibrated to them).
            seed: seed of the batch sampling and the noise (ignored in secure mode).

        Returns:
            the wrapped ``(module, optimizer, data_loader)``: train with them as usual (mean-reduced loss).
        """
        size = len(data_loader.dataset)  # type: ignore[arg-type]
        if size != self.num_samples:
            raise ValueError(f"the data loader holds {size} records, but DPTraining was set up for {self.num_samples}.")
        common = dict(
            module=module,
            optimizer=optimizer,
            data_loader=self._seeded(data_loader, seed),
            max_grad_norm=self.config.max_grad_norm,
            poisson_sampling=True,
            grad_sample_mode=self.config.grad_sample_mode,
            noise_generator=None if self.config.secure_mode else torch.Generator().manual_seed(seed + 1),
        )
        if self.config.target_epsilon is not None:
            if epochs is None or int(epochs) != epochs or epochs < 1:
                raise ValueError(f"target_epsilon needs the planned number of epochs, got epochs={epochs!r}.")
            module, optimizer, loader = self.engine.make_private_with_epsilon(
                **common, target_epsilon=self.config.target_epsilon, target_delta=self.delta, epochs=int(epochs)
            )
        else:
            module, optimizer, loader = self.engine.make_private(
                **common, noise_multiplier=self.config.noise_multiplier
            )
        self.noise_multiplier = float(optimizer.noise_multiplier)
        self.sample_rate = 1.0 / len(data_loader)
        return module, optimizer, loader

    @staticmethod
    def _seeded(data_loader: DataLoader, seed: int) -> DataLoader:
        """The same loader with its own generator seeded by ``seed`` (Opacus's Poisson sampler draws from it)."""
        return DataLoader(
            data_loader.dataset,
            batch_size=data_loader.batch_size,
            collate_fn=data_loader.collate_fn,
            num_workers=data_loader.num_workers,
            pin_memory=data_loader.pin_memory,
            generator=torch.Generator().manual_seed(seed),
        )

    @staticmethod
    def noise_step(optimizer: torch.optim.Optimizer) -> None:
        """The step of an empty Poisson batch: no record, so the update is the Gaussian noise alone (what the
        accountant assumes of every step; skipping the step would make the number of steps depend on the data).

        Args:
            optimizer: the ``DPOptimizer`` returned by :meth:`make_private`.
        """
        for p in optimizer.params:  # type: ignore[attr-defined]
            p.grad_sample = p.new_zeros((0, *p.shape))
        optimizer.step()

    @property
    def steps(self) -> int:
        """Optimiser steps taken so far (the steps the accountant counted)."""
        return sum(int(n) for _, _, n in self.engine.accountant.history)

    def epsilon(self) -> float:
        """Epsilon spent so far at ``self.delta``, from the engine's accountant."""
        return float(self.engine.get_epsilon(self.delta)) if self.engine.accountant.history else 0.0

    def report(self) -> dict[str, Any]:
        """The privacy of the run so far: ``epsilon``, ``delta``, ``noise_multiplier``, ``sample_rate``, ``steps``,
        ``max_grad_norm``, ``accountant``, ``target_epsilon``, ``num_samples`` and ``secure_mode``."""
        return {
            "epsilon": self.epsilon(),
            "delta": self.delta,
            "noise_multiplier": self.noise_multiplier,
            "sample_rate": self.sample_rate,
            "steps": self.steps,
            "num_samples": self.num_samples,
            **{k: v for k, v in asdict(self.config).items() if k in ("target_epsilon", "max_grad_norm", "accountant")},
            "secure_mode": self.config.secure_mode,
        }
