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
"""Command line of the federated pretraining simulation: a bundle's configs, N simulated sites, FedAvg on Flower.

    python -m monai_jepa.fl.simulate \\
        --config_file bundles/brats_vjepa/configs/train.json bundles/brats_vjepa/configs/federated/client.json \\
        --num_sites 3 --num_rounds 5 --local_steps 20 --output_dir outputs/federated/demo

Every site reads the same config files with ``site_index`` set to its number (``federated/client.json`` gives it
its share of the datalist, see :func:`monai_jepa.fl.site_datalist`); ``--set key=value`` overrides any config id
(values are read as JSON when they parse, else kept as strings). The final global model is written to
``<output_dir>/global_model.pt`` (``{"model": state_dict}``, the format of the bundle's checkpoints) and the per-round
metrics to ``<output_dir>/history.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser

from monai_jepa.fl.client_algo import MaskedLatentAlgo
from monai_jepa.fl.flower import FederatedRun, run_fedavg_simulation
from monai_jepa.utils.fileio import atomic_torch_save, atomic_write_text

__all__ = ["build_site_algo", "initial_weights", "main", "parse_overrides", "simulate"]


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["lr=0.001", "roi_size=[32, 32, 32]", "dataset_dir=/data"]`` -> ``{"lr": 0.001, ...}`` (JSON, else string).

    Raises:
        ValueError: an entry without ``=``.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {pair!r}.")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def site_overrides(overrides: Mapping[str, Any], site: int, output_dir: str | os.PathLike | None) -> dict[str, Any]:
    """``overrides`` plus the site's index and, with ``output_dir``, its own output folder ``<output_dir>/site_<k>``."""
    out = {**overrides, "site_index": int(site)}
    if output_dir is not None:
        out["output_dir"] = str(Path(output_dir).resolve() / f"site_{site}")
    return out


def build_site_algo(
    config_file: Sequence[str], overrides: Mapping[str, Any], output_dir: str | None, site: int, **kwargs: Any
) -> MaskedLatentAlgo:
    """The :class:`MaskedLatentAlgo` of site ``site`` from the bundle configs (the factory of the simulation)."""
    return MaskedLatentAlgo.from_bundle(config_file, site_overrides(overrides, site, output_dir), **kwargs)


def initial_weights(
    config_file: Sequence[str], overrides: Mapping[str, Any], output_dir: str | None = None
) -> dict[str, torch.Tensor]:
    """The initial global model: the config's ``network_def`` built after its ``initialize`` (seeded), on the CPU."""
    parser = ConfigParser()
    parser.read_config(list(config_file))
    for key, value in site_overrides(overrides, 0, output_dir).items():
        parser[key] = value
    if "initialize" in parser:
        parser.get_parsed_content("initialize")
    network = parser.get_parsed_content("network_def")
    return {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}


def simulate(
    config_file: Sequence[str],
    num_sites: int,
    num_rounds: int,
    local_steps: int,
    output_dir: str | os.PathLike,
    overrides: Mapping[str, Any] | None = None,
    evaluate: bool = True,
    num_cpus: int = 2,
    cpus_per_site: int = 1,
) -> FederatedRun:
    """Run the simulation and write ``global_model.pt`` and ``history.json`` to ``output_dir``.

    Args:
        config_file: the bundle config files (e.g. ``train.json`` then ``federated/client.json``).
        num_sites: number of simulated sites.
        num_rounds: FedAvg rounds.
        local_steps: optimiser steps of each site per round.
        output_dir: output folder (the sites write to ``<output_dir>/site_<k>``).
        overrides: other config overrides (``{"dataset_dir": ...}``).
        evaluate: each site scores the global model on its held-out images after every round.
        num_cpus: CPU cores of the simulation runtime.
        cpus_per_site: cores per site worker.

    Returns:
        the :class:`~monai_jepa.fl.FederatedRun`.
    """
    config_file = [str(Path(f)) for f in config_file]
    missing = [f for f in config_file if not Path(f).is_file()]
    if missing:
        raise FileNotFoundError(f"config file(s) {missing} do not exist.")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    overrides = {**(overrides or {}), "num_sites": num_sites, "num_rounds": num_rounds, "local_steps": local_steps}
    weights = initial_weights(config_file, overrides, str(out))
    factory = functools.partial(build_site_algo, config_file, overrides, str(out))
    run = run_fedavg_simulation(factory, weights, num_sites, num_rounds, evaluate=evaluate, num_cpus=num_cpus,
                                cpus_per_site=cpus_per_site)  # fmt: skip
    atomic_torch_save({"model": run.weights}, out / "global_model.pt")
    payload = {"config_file": config_file, "overrides": overrides, "num_sites": num_sites, "num_rounds": num_rounds,
               "local_steps": local_steps, "history": run.history}  # fmt: skip
    atomic_write_text(out / "history.json", json.dumps(payload, indent=4, default=float) + "\n")
    return run


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config_file", nargs="+", required=True, help="bundle config files, later ones override")
    p.add_argument("--num_sites", type=int, default=3)
    p.add_argument("--num_rounds", type=int, default=5)
    p.add_argument("--local_steps", type=int, default=20, help="optimiser steps per site and round")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--site_split", default=None, help="random (IID), size or intensity (non-IID); default: config's")
    p.add_argument("--datalist", default=None, help="a JSON datalist to share among the sites instead of dataset_dir")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="other config overrides")
    p.add_argument("--no_evaluate", action="store_true", help="skip the federated evaluation after each round")
    p.add_argument("--num_cpus", type=int, default=2, help="CPU cores of the simulation")
    p.add_argument("--cpus_per_site", type=int, default=1)
    args = p.parse_args(argv)
    overrides = parse_overrides(args.set)
    if args.site_split is not None:
        overrides["site_split"] = args.site_split
    if args.datalist is not None:
        overrides["datalist"] = str(Path(args.datalist).resolve())
    run = simulate(args.config_file, args.num_sites, args.num_rounds, args.local_steps, args.output_dir, overrides,
                   evaluate=not args.no_evaluate, num_cpus=args.num_cpus, cpus_per_site=args.cpus_per_site)  # fmt: skip
    for record in run.history:
        train, ev = record["train"], record.get("evaluate", {})
        line = f"round {record['round']}: train loss {train.get('loss', float('nan')):.4f}"
        if ev:
            line += f", held-out pred {ev.get('pred', float('nan')):.4f}, eff. rank {ev.get('effective_rank', 0):.2f}"
        print(line)
    print(f"global model: {Path(args.output_dir) / 'global_model.pt'}")


if __name__ == "__main__":
    main()
