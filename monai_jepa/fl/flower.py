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
"""FedAvg simulation of :class:`~monai_jepa.fl.MaskedLatentAlgo` clients on Flower's simulation runtime.

Flower's ``ServerApp`` runs FedAvg (:class:`flwr.serverapp.strategy.FedAvg`, weighted by each site's number of
training images) and every virtual site runs a ``ClientApp`` that wraps the site's MONAI FL ``ClientAlgo``. Flower may
run the ``ClientApp`` of a site in any worker process, round after round, so the site's local state (trainer,
optimizer, schedule) travels in the site's Flower ``Context.state`` between rounds; a worker keeps the site's algorithm
in memory while its state is current, to spare rebuilding it.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from monai.fl.utils.constants import ExtraItems, WeightType
from monai.fl.utils.exchange_object import ExchangeObject
from monai.utils import optional_import

from monai_jepa.fl.client_algo import MaskedLatentAlgo
from monai_jepa.utils.module import require_package

__all__ = ["FederatedRun", "run_fedavg_simulation"]

logger = logging.getLogger(__name__)

_STATE_KEY = "monai_jepa_local_state"
_ALGOS: dict[tuple[int, int], MaskedLatentAlgo] = {}  # (run id, site) -> the algorithm kept by this worker process


@dataclass
class FederatedRun:
    """The outcome of :func:`run_fedavg_simulation`.

    Attributes:
        weights: the final global model state (CPU tensors).
        history: one dict per round: ``{"round", "train": {...}, "evaluate": {...}}``, the metrics averaged over the
            sites (weighted by their number of training images) plus ``"site<k>/<name>"`` entries per site and
            ``"num_replies"``.
    """

    weights: dict[str, torch.Tensor]
    history: list[dict[str, Any]] = field(default_factory=list)


def _num_examples(algo: MaskedLatentAlgo) -> int:
    dataset = getattr(algo.trainer.data_loader, "dataset", None)
    try:
        return max(1, len(dataset)) if dataset is not None else 1
    except TypeError:
        return 1


def _site_algo(factory: Callable[[int], MaskedLatentAlgo], context: Any) -> tuple[int, MaskedLatentAlgo]:
    """The site's algorithm: this worker's copy when its state is current, else rebuilt and restored."""
    from flwr.app import ConfigRecord  # noqa: F401 (Flower present: this runs inside its ClientApp)

    site = int(context.node_config["partition-id"])
    key = (int(context.run_id), site)
    stored = context.state.config_records.get(_STATE_KEY) if hasattr(context.state, "config_records") else None
    iteration = int(stored["iteration"]) if stored is not None else 0
    algo = _ALGOS.get(key)
    if algo is None or int(algo.trainer.state.iteration) != iteration:
        algo = factory(site)
        algo.initialize({ExtraItems.CLIENT_NAME: f"site_{site}"})
        if stored is not None:
            algo.load_state_dict(torch.load(io.BytesIO(stored["state"]), map_location="cpu", weights_only=True))
        _ALGOS[key] = algo
    return site, algo


def _make_client_app(factory: Callable[[int], MaskedLatentAlgo]) -> Any:
    from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Any) -> Message:
        site, algo = _site_algo(factory, context)
        global_weights = msg.content["arrays"].to_torch_state_dict()
        algo.train(ExchangeObject(weights=dict(global_weights), weight_type=WeightType.WEIGHTS))
        update = algo.get_weights()
        weights = update.weights
        if update.weight_type == WeightType.WEIGHT_DIFF:  # FedAvg averages models: send the local model
            weights = {k: global_weights[k] + v.to(global_weights[k].dtype) for k, v in weights.items()}
        buffer = io.BytesIO()
        torch.save(algo.state_dict(), buffer)
        context.state[_STATE_KEY] = ConfigRecord(
            {"state": buffer.getvalue(), "iteration": int(algo.trainer.state.iteration)}
        )
        stats = update.statistics or {}
        metrics = {k: float(v) for k, v in stats.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        metrics.update({"num-examples": _num_examples(algo), "site": site})
        content = RecordDict({"arrays": ArrayRecord(weights), "metrics": MetricRecord(metrics)})
        return Message(content=content, reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Any) -> Message:
        site, algo = _site_algo(factory, context)
        weights = dict(msg.content["arrays"].to_torch_state_dict())
        result = algo.evaluate(ExchangeObject(weights=weights, weight_type=WeightType.WEIGHTS))
        metrics = {k: float(v) for k, v in result.metrics.items() if math.isfinite(float(v))}
        metrics.update({"num-examples": int(result.metrics.get("num_images", 1)), "site": site})
        return Message(content=RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)

    return app


def _aggregate(records: list, weighting_key: str) -> Any:
    """Weighted mean of the sites' metrics, plus each site's own values and the number of replies."""
    from flwr.app import MetricRecord
    from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords

    out = aggregate_metricrecords(records, weighting_key)
    out.pop("site", None)
    for record in records:
        metrics = next(iter(record.metric_records.values()))
        site = int(metrics["site"])
        for k, v in metrics.items():
            if k != "site":
                out[f"site{site}/{k}"] = v
    out["num_replies"] = len(records)
    return MetricRecord(dict(out))


def run_fedavg_simulation(
    algo_factory: Callable[[int], MaskedLatentAlgo],
    initial_weights: Mapping[str, torch.Tensor],
    num_sites: int,
    num_rounds: int,
    evaluate: bool = True,
    num_cpus: int = 2,
    cpus_per_site: int = 1,
    verbose: bool = False,
) -> FederatedRun:
    """Run FedAvg over ``num_sites`` simulated sites for ``num_rounds`` rounds on Flower's simulation runtime.

    Each round every site receives the global weights, runs :py:meth:`MaskedLatentAlgo.train` (its local steps) and
    sends its model back; the server averages the models weighted by the sites' numbers of training images
    (FedAvg). With ``evaluate``, every site then scores the new global model on its held-out images
    (:py:meth:`MaskedLatentAlgo.evaluate`). A round in which a site fails raises (Flower itself would carry on with
    the other sites).

    Args:
        algo_factory: ``site_index -> MaskedLatentAlgo`` (picklable, e.g. a ``functools.partial``), called in
            Flower's worker processes.
        initial_weights: the initial global model state, the same for every site.
        num_sites: number of simulated sites (Flower's ``partition-id`` 0 .. num_sites - 1).
        num_rounds: number of rounds.
        evaluate: federated evaluation of the global model after every round.
        num_cpus: CPU cores given to the simulation runtime.
        cpus_per_site: cores of one site's worker (``num_cpus // cpus_per_site`` sites train at the same time).
        verbose: Flower's verbose logging.

    Returns:
        :class:`FederatedRun`: the final global weights and the per-round metrics.

    Raises:
        OptionalImportError: Flower is not installed (``pip install 'monai_jepa[federated]'``).
        ValueError: bad counts.
        RuntimeError: a site did not return its update or its evaluation in some round.
    """
    require_package("flwr", "monai_jepa.fl.run_fedavg_simulation", "the federated simulation", extra="federated")
    require_package("ray", "monai_jepa.fl.run_fedavg_simulation", "Flower's simulation runtime", extra="federated")
    for name, value in (("num_sites", num_sites), ("num_rounds", num_rounds), ("num_cpus", num_cpus)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if int(cpus_per_site) != cpus_per_site or not 1 <= cpus_per_site <= num_cpus:
        raise ValueError(f"cpus_per_site must be an integer in [1, num_cpus={num_cpus}], got {cpus_per_site!r}.")
    from flwr.app import ArrayRecord
    from flwr.serverapp import ServerApp
    from flwr.serverapp.strategy import FedAvg

    run_simulation, _ = optional_import("flwr.simulation", name="run_simulation")
    initial = {k: v.detach().cpu().clone() for k, v in initial_weights.items()}
    outcome: dict[str, Any] = {}
    server = ServerApp()

    @server.main()
    def main(grid: Any, context: Any) -> None:
        strategy = FedAvg(
            fraction_train=1.0, fraction_evaluate=1.0 if evaluate else 0.0, min_train_nodes=num_sites,
            min_evaluate_nodes=num_sites, min_available_nodes=num_sites, weighted_by_key="num-examples",
            train_metrics_aggr_fn=_aggregate, evaluate_metrics_aggr_fn=_aggregate,
        )  # fmt: skip
        outcome["result"] = strategy.start(grid=grid, initial_arrays=ArrayRecord(initial), num_rounds=num_rounds)

    backend = {
        "client_resources": {"num_cpus": int(cpus_per_site), "num_gpus": 0.0},
        "init_args": {"num_cpus": int(num_cpus), "include_dashboard": False, "logging_level": "error"},
    }
    run_simulation(server, _make_client_app(algo_factory), num_supernodes=num_sites, backend_config=backend,
                   verbose_logging=verbose)  # fmt: skip
    result = outcome.get("result")
    if result is None:
        raise RuntimeError("the federated simulation ended without a result (see Flower's log above).")
    history = []
    for rnd in range(1, num_rounds + 1):
        train = dict(result.train_metrics_clientapp.get(rnd, {}))
        record = {"round": rnd, "train": train}
        if evaluate:
            record["evaluate"] = dict(result.evaluate_metrics_clientapp.get(rnd, {}))
        for phase in ("train", "evaluate") if evaluate else ("train",):
            replies = int(record[phase].get("num_replies", 0))
            if replies != num_sites:
                raise RuntimeError(
                    f"round {rnd}: {replies} of {num_sites} sites returned their {phase} result (see Flower's log)."
                )
        history.append(record)
    weights = {k: v.clone() for k, v in result.arrays.to_torch_state_dict().items()}
    return FederatedRun(weights=weights, history=history)
