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
"""Pretraining engine: the LeJEPA trainer, learning-rate schedules, checkpoints, RNG states, logging helpers and the
start-up probe of the step settings."""

from .autotune import choose_step_settings, settings_label, step_candidates
from .checkpoint import JEPACheckpointer, atomic_torch_save, latest_checkpoint, unwrap_network
from .monitoring import JEPAProgressBar, attach_tensorboard, jepa_scalars
from .rng import capture_rng_state, derive_seed, restore_rng_state, seed_global_rngs
from .schedulers import warmup_cosine
from .trainer import OUTPUT_KEYS, LeJEPATrainer, NonFiniteGradientError, NonFiniteLossError, plain_tensor

__all__ = [
    "JEPACheckpointer",
    "JEPAProgressBar",
    "LeJEPATrainer",
    "NonFiniteGradientError",
    "NonFiniteLossError",
    "OUTPUT_KEYS",
    "atomic_torch_save",
    "attach_tensorboard",
    "capture_rng_state",
    "choose_step_settings",
    "derive_seed",
    "jepa_scalars",
    "latest_checkpoint",
    "plain_tensor",
    "restore_rng_state",
    "seed_global_rngs",
    "settings_label",
    "step_candidates",
    "unwrap_network",
    "warmup_cosine",
]

from .masked_trainer import MaskedLatentTrainer  # noqa: E402

__all__ += ["MaskedLatentTrainer"]
