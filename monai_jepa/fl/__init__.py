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
"""Federated pretraining: a MONAI FL ``ClientAlgo`` of masked latent prediction, the partition of a datalist into
simulated sites, and a FedAvg simulation on Flower (``pip install 'monai_jepa[federated]'``)."""

from .client_algo import MaskedLatentAlgo, masked_latent_metrics
from .flower import FederatedRun, run_fedavg_simulation
from .sites import SITE_SPLITS, image_statistic, site_datalist

__all__ = [
    "FederatedRun",
    "MaskedLatentAlgo",
    "SITE_SPLITS",
    "image_statistic",
    "masked_latent_metrics",
    "run_fedavg_simulation",
    "site_datalist",
]
