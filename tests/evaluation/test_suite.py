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

import pytest
import torch
import torch.nn as nn
from monai.data import Dataset

from monai_jepa.data import make_demo_images
from monai_jepa.engines import atomic_torch_save
from monai_jepa.evaluation import EvaluationSuite, load_checkpoint_state, reinit_factory
from monai_jepa.networks import ConvEncoder, LeJEPAModel, Projector, build_lejepa_model

RECORD_KEYS = {
    "dataset",
    "method",
    "protocol",
    "probe",
    "label_fraction",
    "shots",
    "n_labels",
    "seeds",
    "acc",
    "auc",
    "seconds",
    "pretrain_seconds",
    "commit",
    "command",
    "machine",
    "date",
}


def small_model(seed=0):
    torch.manual_seed(seed)
    enc = ConvEncoder(2, 1, "resnet10", conv1_t_size=3, conv1_t_stride=1, no_max_pool=True, widen_factor=0.125)
    return LeJEPAModel(enc, Projector(enc.embed_dim, 16, 8))


@pytest.fixture(scope="module")
def demo():
    """Tiny train / val / test splits of the synthetic demo images (16 px, 2 classes)."""
    splits = [make_demo_images(n, size=16, seed=s) for n, s in ((40, 0), (16, 1), (24, 2))]
    return [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in splits]


def test_load_checkpoint_state_forms_and_errors(tmp_path):
    state = small_model().state_dict()
    atomic_torch_save(
        {"model": state, "optimizer": {}, "engine": {"iteration": 3}}, tmp_path / "checkpoint_00000003.pt"
    )
    (tmp_path / "checkpoint_latest.txt").write_text("checkpoint_00000003.pt\n")
    torch.save(state, tmp_path / "plain.pt")
    for source in (tmp_path / "checkpoint_00000003.pt", tmp_path / "plain.pt", tmp_path):  # file, plain, folder
        loaded = load_checkpoint_state(source)
        assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint_state(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="no 'checkpoint_latest.txt' pointer"):
        load_checkpoint_state(tmp_path / "sub" if (tmp_path / "sub").mkdir() is None else None)
    torch.save({"epoch": 3, "weights": [1, 2]}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"'.*other.pt' holds neither .* keys \['epoch', 'weights'\]"):
        load_checkpoint_state(tmp_path / "other.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"'.*text.pt' could not be read"):
        load_checkpoint_state(tmp_path / "text.pt")


def test_checkpoint_weights_and_random_init(tmp_path, demo):
    trained = small_model(seed=1)
    torch.save({"model": trained.state_dict()}, tmp_path / "ckpt.pt")
    network_def = small_model(seed=0)
    pristine = {k: v.clone() for k, v in network_def.state_dict().items()}
    suite = EvaluationSuite(
        network_def=network_def,
        checkpoint=tmp_path / "ckpt.pt",
        train_data=demo[0],
        test_data=demo[2],
        output_dir=tmp_path,
    )
    for k, v in trained.state_dict().items():
        assert torch.equal(suite.model.state_dict()[k], v)  # the checkpoint's weights are evaluated
    random_net = suite.random_init_factory()
    for k, v in pristine.items():
        assert torch.equal(random_net.state_dict()[k], v)  # random init: network_def as constructed
    wrong = build_lejepa_model("resnet10", proj_hidden_dim=16, proj_out_dim=8)
    with pytest.raises(ValueError, match=r"checkpoint '.*ckpt.pt'"):
        EvaluationSuite(network_def=wrong, checkpoint=tmp_path / "ckpt.pt", train_data=demo[0], test_data=demo[2])


def test_reinit_factory():
    model = small_model()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.5)  # a "trained" state
    torch.manual_seed(0)
    fresh = reinit_factory(model)()
    conv = fresh.encoder.resnet.conv1.weight
    assert conv.shape == model.encoder.resnet.conv1.weight.shape and conv.std() > 0.01
    assert (model.encoder.resnet.conv1.weight == 0.5).all()  # the template is untouched
    vit = build_lejepa_model("vit_tiny", img_size=16, patch_size=8, num_layers=1, pooling="cls")
    with pytest.raises(ValueError, match="random_init_factory"):
        reinit_factory(vit)


def test_end_to_end_suite(tmp_path, demo):
    train, val, test = demo
    suite = EvaluationSuite(
        small_model(),
        train,
        val,
        test,
        "binary",
        tmp_path,
        "demo",
        label_fractions=(0.1, 1.0),
        shots=(1, 5),
        seeds=(0, 1),
        episodes=2,
        finetune_fractions=(0.25, 1.0),
        finetune_epochs=1,
        pretrain_seconds=12.5,
        finetune_kwargs={"batch_size": 16},
        linear_kwargs={"c_grid": (0.1, 1.0)},
        command="pytest suite",
    )
    records = suite.run()
    kinds = {(r["method"], r["protocol"], r["probe"]) for r in records}
    assert kinds == {
        *((m, p, p) for m in ("lejepa", "random_init") for p in ("linear", "knn")),
        *((m, "few_shot", p) for m in ("lejepa", "random_init") for p in ("linear", "knn")),
        ("lejepa", "fine_tune", None),
        ("scratch", "fine_tune", None),
    }
    assert len(records) == 2 * (2 * 2 + 2 * 2) + 2 * 2
    for r in records:
        assert RECORD_KEYS <= r.keys(), RECORD_KEYS - r.keys()
        assert r["dataset"] == "demo" and r["command"] == "pytest suite" and 0.0 <= r["auc"] <= 1.0
        assert r["pretrain_seconds"] == (12.5 if r["method"] == "lejepa" else 0.0)
        several = len(r["seeds"]) > 1
        assert ("auc_std" in r) == several and ("acc_std" in r) == several
    low = next(r for r in records if r["protocol"] == "linear" and r["label_fraction"] == 0.1)
    assert low["n_labels"] == 4 and low["seeds"] == [0, 1]  # 10% of 20 + 20 labels, two seeds
    chosen = [r["C"] for r in records if r["protocol"] == "linear"]
    assert all(set(c if isinstance(c, list) else [c]) <= {0.1, 1.0} for c in chosen)  # linear_kwargs passed on
    shot5 = next(r for r in records if r["protocol"] == "few_shot" and r["shots"] == 5)
    assert shot5["n_labels"] == 10 and shot5["episodes"] == 2
    tuned = [r for r in records if r["protocol"] == "fine_tune"]
    assert {(r["method"], r["label_fraction"], r["n_labels"]) for r in tuned} == {
        (m, f, n) for m in ("lejepa", "scratch") for f, n in ((0.25, 10), (1.0, 40))
    }
    assert all(r["max_epochs"] == 1 and r["epochs"] == 1 and r["max_minutes"] is None for r in tuned)

    eval_dir = tmp_path / "eval"
    assert json.loads((eval_dir / "metrics.json").read_text()) == json.loads(json.dumps(records))
    report = (eval_dir / "report.md").read_text()
    assert "| labels | lejepa | random_init |" in report and "| labels | lejepa | scratch |" in report
    assert (eval_dir / "label_efficiency.png").read_bytes()[:4] == b"\x89PNG"


def test_dataset_of_dicts_and_protocol_subset(tmp_path, demo):
    (xtr, ytr), _, (xte, yte) = demo
    train = Dataset([{"img": x, "y": int(y)} for x, y in zip(xtr, ytr)])
    test = Dataset([{"img": x, "y": int(y)} for x, y in zip(xte, yte)])
    suite = EvaluationSuite(
        small_model(),
        train,
        None,
        test,
        "binary",
        tmp_path,
        protocols=("few_shot",),
        shots=(2,),
        episodes=2,
        image_key="img",
        label_key="y",
    )
    records = suite.run()
    assert [(r["protocol"], r["probe"], r["shots"], r["n_labels"]) for r in records] == [
        ("few_shot", "linear", 2, 4),
        ("few_shot", "knn", 2, 4),
    ]


def test_suite_argument_errors(demo):
    train, _, test = demo
    with pytest.raises(ValueError, match="exactly one of model and network_def"):
        EvaluationSuite(train_data=train, test_data=test)
    with pytest.raises(ValueError, match="train_data and test_data"):
        EvaluationSuite(small_model(), train)
    with pytest.raises(ValueError, match="segmentation"):
        EvaluationSuite(small_model(), train, None, test, protocols=("segmentation",))
    with pytest.raises(ValueError, match="label fractions"):
        EvaluationSuite(small_model(), train, None, test, finetune_fractions=(0.0,))
    with pytest.raises(ValueError, match="nn.Module"):
        EvaluationSuite(network_def="resnet18", train_data=train, test_data=test)
    with pytest.raises(ValueError, match="random_init_factory"):  # a trained model whose layers cannot be re-drawn
        model = nn.Sequential(nn.Flatten())
        model.token = nn.Parameter(torch.zeros(3))
        EvaluationSuite(model, train, None, test)


def test_dp_suite_trains_privately_and_reports_epsilon(tmp_path, demo):
    pytest.importorskip("opacus")
    train, val, test = demo
    suite = EvaluationSuite(
        small_model(),
        train,
        val,
        test,
        "binary",
        tmp_path,
        "demo",
        protocols=("linear", "fine_tune", "random_init"),
        seeds=(0, 1),
        finetune_fractions=(1.0,),
        finetune_epochs=1,
        finetune_kwargs={"batch_size": 16},
        dp={"target_epsilon": 4.0, "delta": 1e-3},
        dp_linear_kwargs={"epochs": 2, "batch_size": 10},
    )
    records = suite.run()
    kinds = [(r["method"], r["protocol"]) for r in records]
    assert kinds == [("lejepa", "dp_linear"), ("random_init", "dp_linear"), ("lejepa", "dp_fine_tune")]
    for r in records:
        assert 3.9 <= r["epsilon"] <= 4.0 and r["delta"] == 1e-3 and r["accountant"] == "rdp"
        assert r["max_grad_norm"] == 1.0 and r["noise_multiplier"] > 0 and 0.0 <= r["auc"] <= 1.0
    assert records[0]["seeds"] == [0, 1] and records[0]["steps"] == 2 * 4 and "auc_std" in records[0]
    assert any("GroupNorm" in line for line in records[2]["dp_changes"])  # the encoder's BatchNorm was replaced
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "## Differential privacy" in report and "| lejepa | dp_linear | 40 | " in report
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())[0]["epsilon"] == records[0]["epsilon"]
    with pytest.raises(ValueError, match=r"protocols \['knn', 'few_shot'\] have no differentially private"):
        EvaluationSuite(
            small_model(), train, None, test, protocols=("linear", "knn", "few_shot"), dp={"target_epsilon": 1}
        )
    with pytest.raises(ValueError, match="unknown DP setting"):
        EvaluationSuite(small_model(), train, None, test, protocols=("linear",), dp={"eps": 1})
