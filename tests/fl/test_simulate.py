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

import json
import sys
from pathlib import Path

import pytest
import torch
from monai.utils import OptionalImportError

from monai_jepa.fl import run_fedavg_simulation
from monai_jepa.fl.simulate import initial_weights, parse_overrides, simulate

CONFIGS = Path(__file__).resolve().parents[2] / "bundles" / "brats_vjepa" / "configs"
CONFIG_FILES = [str(CONFIGS / "train.json"), str(CONFIGS / "federated" / "client.json")]
# a tiny UNet on 16^3 crops of 8 synthetic 4-channel volumes; no mixed precision, no data checks
TINY = {
    "demo_size": [16, 16, 16], "volume_size": [16, 16, 16], "roi_size": [16, 16, 16], "channels": [4, 8],
    "strides": [2], "num_res_units": 0, "predictor_dim": 12, "predictor_depth": 1, "predictor_num_heads": 2,
    "batch_size": 2, "num_samples": 1, "amp": False, "validate_data": False, "cache": False,
}  # fmt: skip


def test_parse_overrides():
    out = parse_overrides(["lr=0.001", "roi_size=[8, 8, 8]", "dataset_dir=/data/x", "flag=true", "name="])
    assert out == {"lr": 0.001, "roi_size": [8, 8, 8], "dataset_dir": "/data/x", "flag": True, "name": ""}
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["lr"])


def test_missing_flower_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "flwr", None)
    with pytest.raises(OptionalImportError, match=r"monai_jepa\[federated\]"):
        run_fedavg_simulation(lambda site: None, {}, num_sites=2, num_rounds=1)


def test_missing_config_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        simulate([str(tmp_path / "nope.json")], 2, 1, 1, tmp_path)


def _demo_datalist(tmp_path: Path) -> Path:
    from monai_jepa.data import volume_datalist

    path = tmp_path / "datalist.json"
    volume_datalist(None, demo_dir=tmp_path / "demo", demo_num_cases=8, demo_size=(16, 16, 16),
                    fractions=(0.5, 0.5, 0.0), out=path)  # fmt: skip
    return path


def test_initial_weights_are_seeded(tmp_path):
    overrides = {**TINY, "datalist": str(_demo_datalist(tmp_path)), "num_sites": 2}
    a, b = initial_weights(CONFIG_FILES, overrides), initial_weights(CONFIG_FILES, overrides)
    assert (
        set(a) == set(b) and any(k.startswith("encoder.net.") for k in a) and any(k.startswith("predictor.") for k in a)
    )
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_two_sites_two_rounds(tmp_path):
    pytest.importorskip("flwr")
    pytest.importorskip("ray")
    overrides = {**TINY, "datalist": str(_demo_datalist(tmp_path))}
    out = tmp_path / "run"
    run = simulate(CONFIG_FILES, num_sites=2, num_rounds=2, local_steps=2, output_dir=out, overrides=overrides,
                   num_cpus=1)  # fmt: skip
    start = initial_weights(CONFIG_FILES, {**overrides, "num_sites": 2})
    saved = torch.load(out / "global_model.pt", map_location="cpu", weights_only=True)["model"]
    assert set(saved) == set(start) == set(run.weights)
    assert all(torch.equal(saved[k], run.weights[k]) for k in saved)
    assert any(not torch.equal(saved[k], start[k]) for k in saved)  # the rounds trained the global model
    history = json.loads((out / "history.json").read_text())
    assert history["num_sites"] == 2 and [r["round"] for r in history["history"]] == [1, 2]
    for record in history["history"]:
        train, ev = record["train"], record["evaluate"]
        assert train["num_replies"] == 2 and ev["num_replies"] == 2
        assert train["site0/num_executed_iterations"] == train["site1/num_executed_iterations"] == 2
        # 2 training and 2 held-out volumes per site (8 demo cases, half of them held out)
        assert train["site0/num-examples"] == train["site1/num-examples"] == 2
        assert ev["site0/num_images"] == ev["site1/num_images"] == 2
        assert all(torch.isfinite(torch.tensor(float(ev[k]))) for k in ("pred", "sigreg", "effective_rank"))
    assert (out / "site_0").is_dir() and (out / "site_1").is_dir()


def test_site_algo_from_the_bundle_configs(tmp_path):
    """federated/client.json on train.json: the site's share of the data, local steps per round, its own seed."""
    from monai.fl.utils.constants import FlStatistics, WeightType
    from monai.fl.utils.exchange_object import ExchangeObject

    from monai_jepa.fl import MaskedLatentAlgo

    overrides = {**TINY, "datalist": str(_demo_datalist(tmp_path)), "num_sites": 2, "site_index": 1,
                 "num_rounds": 2, "local_steps": 3, "output_dir": str(tmp_path / "site_1")}  # fmt: skip
    algo = MaskedLatentAlgo.from_bundle(CONFIG_FILES, overrides)
    trainer = algo.trainer
    assert trainer.state.epoch_length == 3 and trainer.state.seed == 1  # seed + site_index
    assert len(trainer.data_loader.dataset) == 2 and trainer.data_loader.drop_last  # 4 training cases, 2 sites
    assert set(algo.save_dict) == {"lr_scheduler"}
    start = initial_weights(CONFIG_FILES, overrides)
    algo.train(ExchangeObject(weights=start, weight_type=WeightType.WEIGHTS))
    assert algo.get_weights().statistics[FlStatistics.NUM_EXECUTED_ITERATIONS] == 3
    metrics = algo.evaluate(ExchangeObject(weights=start, weight_type=WeightType.WEIGHTS)).metrics
    assert metrics["num_images"] == 2.0  # the site's half of the 4 held-out cases
    with pytest.raises(KeyError, match="no 'train#nope'"):
        MaskedLatentAlgo.from_bundle(CONFIG_FILES, overrides, trainer_key="train#nope")
