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

import copy

import pytest
import torch
from monai.fl.utils.constants import ExtraItems, FlStatistics, WeightType
from monai.fl.utils.exchange_object import ExchangeObject
from monai.handlers import LrScheduleHandler
from monai.networks.nets import UNet

from monai_jepa.engines import MaskedLatentTrainer, warmup_cosine
from monai_jepa.fl import MaskedLatentAlgo, masked_latent_metrics
from monai_jepa.losses import MaskedLatentLoss
from monai_jepa.networks import JEPAPredictor, MaskedConvEncoder, MaskedLatentModel
from monai_jepa.transforms import MultiBlockMaskGenerator

SIZE = (16, 16, 16)


def _batches(seed: int, n: int = 4, batch: int = 2) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 1, 4, 4, 4, generator=g)
    images = torch.nn.functional.interpolate(base, size=SIZE, mode="trilinear", align_corners=False)
    return [{"image": images[i : i + batch]} for i in range(0, n, batch)]


def _algo(data_seed: int = 0, seed: int = 0, local_steps: int = 2, **kwargs) -> MaskedLatentAlgo:
    torch.manual_seed(0)  # same initial model for every site
    net = UNet(3, 1, 2, channels=(4, 8), strides=(2,), num_res_units=0)
    enc = MaskedConvEncoder(net, SIZE, patch_size=4)
    model = MaskedLatentModel(enc, JEPAPredictor(enc.grid_size, enc.embed_dim, predictor_dim=12, depth=1, num_heads=2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = warmup_cosine(opt, warmup_steps=1, total_steps=8)
    trainer = MaskedLatentTrainer(
        device="cpu", max_epochs=1, epoch_length=local_steps, train_data_loader=_batches(data_seed), network=model,
        optimizer=opt, loss_function=MaskedLatentLoss(lamb=0.1, num_slices=32, seed=seed),
        mask_fn=MultiBlockMaskGenerator(enc.grid_size, num_blocks=2, block_scale=(0.15, 0.2), seed=seed),
        amp=False, channels_last=False, seed=seed,
        train_handlers=[LrScheduleHandler(sched, print_lr=False, epoch_level=False)],
    )  # fmt: skip
    return MaskedLatentAlgo(trainer, eval_data=_batches(99), save_dict={"lr_scheduler": sched}, **kwargs)


def _global(algo: MaskedLatentAlgo) -> ExchangeObject:
    weights = {k: v.clone() for k, v in algo.trainer.network.state_dict().items()}
    return ExchangeObject(weights=weights, weight_type=WeightType.WEIGHTS)


def _fedavg(updates: list[ExchangeObject]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([u.weights[k].float() for u in updates]).mean(0) for k in updates[0].weights}


def test_weights_contract_and_training_changes_them():
    algo = _algo()
    algo.initialize({ExtraItems.CLIENT_NAME: "site_a"})
    start = _global(algo)
    out = algo.get_weights()
    assert isinstance(out, ExchangeObject) and out.weight_type == WeightType.WEIGHTS and out.is_valid_weights()
    assert set(out.weights) == set(algo.trainer.network.state_dict())
    assert all(v.device.type == "cpu" for v in out.weights.values())
    algo.train(start)
    out = algo.get_weights()
    assert out.statistics[FlStatistics.NUM_EXECUTED_ITERATIONS] == 2 and algo.trainer.state.iteration == 2
    assert set(out.statistics) >= {"loss", "pred", "sigreg"}
    changed = [k for k in start.weights if not torch.equal(start.weights[k], out.weights[k])]
    assert any(k.startswith("encoder.net.") for k in changed) and any(k.startswith("predictor.") for k in changed)
    # a second round continues the local schedule: 2 more steps, the learning rate moves on
    lr_before = algo.trainer.optimizer.param_groups[0]["lr"]
    algo.train(ExchangeObject(weights=out.weights, weight_type=WeightType.WEIGHTS))
    assert (
        algo.trainer.state.iteration == 4 and algo.get_weights().statistics[FlStatistics.NUM_EXECUTED_ITERATIONS] == 2
    )
    assert algo.trainer.optimizer.param_groups[0]["lr"] != lr_before


def test_weight_diff():
    algo = _algo(send_weight_diff=True)
    start = _global(algo)
    algo.train(start)
    diff = algo.get_weights()
    assert diff.weight_type == WeightType.WEIGHT_DIFF
    local = algo.trainer.network.state_dict()
    for k, d in diff.weights.items():
        torch.testing.assert_close(start.weights[k] + d, local[k])


def test_global_weights_are_loaded_before_training():
    a, b = _algo(), _algo(data_seed=1)
    a.train(_global(a))
    b.train(ExchangeObject(weights=a.get_weights().weights, weight_type=WeightType.WEIGHTS))
    assert b.global_weights is not None
    for k, v in a.get_weights().weights.items():
        torch.testing.assert_close(b.global_weights[k], v)


def test_fedavg_of_identical_clients_equals_single_client_and_is_deterministic():
    single, c1, c2 = _algo(), _algo(), _algo()
    start = _global(single)
    for algo in (single, c1, c2):
        algo.train(copy.deepcopy(start))
    averaged = _fedavg([c1.get_weights(), c2.get_weights()])
    for k, v in single.get_weights().weights.items():
        torch.testing.assert_close(averaged[k], v.float(), rtol=0, atol=1e-6)
        assert torch.equal(c1.get_weights().weights[k], v)  # same seeds: bit-identical
    # another data set gives another model: the average of two sites is none of them
    other = _algo(data_seed=1)
    other.train(copy.deepcopy(start))
    mixed = _fedavg([single.get_weights(), other.get_weights()])
    assert any(not torch.allclose(mixed[k], single.get_weights().weights[k].float()) for k in mixed)


def test_evaluate_metrics_do_not_touch_the_local_model():
    algo = _algo()
    start = _global(algo)
    before = {k: v.clone() for k, v in algo.trainer.network.state_dict().items()}
    step = int(algo.trainer.loss_function.sigreg.step)
    out = algo.evaluate(start)
    assert set(out.metrics) == {"loss", "pred", "sigreg", "sigreg_pooled", "effective_rank", "embedding_std",
                                "num_images", "effective_rank_tokens"}  # fmt: skip
    assert out.metrics["num_images"] == 4.0 and 1.0 <= out.metrics["effective_rank"] <= 3.0  # at most N - 1
    assert out.metrics["effective_rank_tokens"] > out.metrics["effective_rank"]  # 4 x 64 tokens
    assert out.metrics["pred"] > 0 and out.metrics["sigreg_pooled"] >= 0
    assert all(torch.equal(v, before[k]) for k, v in algo.trainer.network.state_dict().items())
    assert int(algo.trainer.loss_function.sigreg.step) == step
    assert algo.evaluate(start).metrics == out.metrics  # fixed masks and SIGReg directions
    algo.train(start)
    assert (
        algo.evaluate(ExchangeObject(weights=algo.get_weights().weights, weight_type=WeightType.WEIGHTS)).metrics
        != out.metrics
    )


def test_metrics_function_matches_the_trainer_objective_terms():
    algo = _algo()
    net, loss = algo.trainer.network, algo.trainer.loss_function
    m = masked_latent_metrics(net, loss, algo.trainer.mask_fns, _batches(3, n=2, batch=2), seed=5)
    masks = copy.deepcopy(algo.trainer.mask_fns[0])
    masks.set_random_state(5)
    ctx, tgt = masks(2)
    ref_loss = copy.deepcopy(loss)
    ref_loss.sigreg.step.zero_()
    with torch.no_grad():
        net.eval()
        ((pred, targets, pooled),) = net(_batches(3, n=2, batch=2)[0]["image"], [ctx], [tgt])
        terms = ref_loss.compute_terms(pred, targets, [pooled, targets.flatten(0, 1)])
        net.train()
    assert m["pred"] == pytest.approx(float(terms["pred"]), rel=1e-5)
    assert m["loss"] == pytest.approx(float(terms["loss"]), rel=1e-5)


def test_local_state_round_trip():
    a = _algo()
    start = _global(a)
    a.train(start)
    state = a.state_dict()
    assert set(state) == {"trainer", "optimizer", "loss", "lr_scheduler"}
    b = _algo()
    b.load_state_dict(state)
    assert b.trainer.state.iteration == 2 and b.trainer.state.epoch == 1
    # the next round of the restored client equals the next round of the original one
    nxt = ExchangeObject(weights=a.get_weights().weights, weight_type=WeightType.WEIGHTS)
    a.train(copy.deepcopy(nxt))
    b.train(copy.deepcopy(nxt))
    for k, v in a.get_weights().weights.items():
        torch.testing.assert_close(b.get_weights().weights[k], v)


def test_bad_inputs():
    algo = _algo()
    with pytest.raises(ValueError, match="ExchangeObject with weights"):
        algo.train(ExchangeObject(weights={}, weight_type=WeightType.WEIGHTS))
    with pytest.raises(ValueError, match="must be sent as"):
        algo.train(ExchangeObject(weights=_global(algo).weights, weight_type=WeightType.WEIGHT_DIFF))
    partial = dict(list(_global(algo).weights.items())[:3])
    with pytest.raises(ValueError, match="lack"):
        algo.train(ExchangeObject(weights=partial, weight_type=WeightType.WEIGHTS))
    with pytest.raises(ValueError, match="local_epochs"):
        _algo(local_epochs=0)
    with pytest.raises(ValueError, match="MaskedLatentTrainer"):
        MaskedLatentAlgo(object())
    no_eval = MaskedLatentAlgo(algo.trainer)
    with pytest.raises(ValueError, match="eval_data"):
        no_eval.evaluate(_global(algo))
    with pytest.raises(KeyError, match="lacks"):
        algo.load_state_dict({"trainer": {}})
    one = [{"image": _batches(0)[0]["image"][:1]}]
    with pytest.raises(ValueError, match="at least 2 images"):
        masked_latent_metrics(algo.trainer.network, algo.trainer.loss_function, algo.trainer.mask_fns, one)
    # batches of one image are fine: the terms are computed on all the images together
    m = masked_latent_metrics(algo.trainer.network, algo.trainer.loss_function, algo.trainer.mask_fns, one + one)
    assert m["num_images"] == 2.0 and m["sigreg"] > 0
