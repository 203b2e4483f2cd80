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

import pytest
import torch
from ignite.engine import Events

from monai_jepa.engines import OUTPUT_KEYS, JEPACheckpointer, MaskedLatentTrainer
from monai_jepa.losses import EMATeacher, MaskedLatentLoss
from monai_jepa.networks import JEPAPredictor, JEPAViT, MaskedLatentModel
from monai_jepa.transforms import MultiBlockMaskGenerator


def _model(spatial_dims: int = 2, seed: int = 0) -> MaskedLatentModel:
    torch.manual_seed(seed)
    size, patch = ((16, 16), 4) if spatial_dims == 2 else ((8, 8, 8), 4)
    enc = JEPAViT(1, img_size=size, patch_size=patch, spatial_dims=spatial_dims, hidden_size=48, mlp_dim=96,
                  num_layers=2, num_heads=3)  # fmt: skip
    return MaskedLatentModel(enc, JEPAPredictor(enc.grid_size, 48, predictor_dim=48, depth=1, num_heads=3))


def _data(n: int = 8, batch: int = 4, spatial=(16, 16)) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    # smooth images: the content of a masked patch is predictable from its neighbours
    base = torch.randn(n, 1, *(s // 4 for s in spatial), generator=g)
    mode = "bilinear" if len(spatial) == 2 else "trilinear"
    images = torch.nn.functional.interpolate(base, size=spatial, mode=mode, align_corners=False)
    return [{"image": images[i : i + batch]} for i in range(0, n, batch)]


def _trainer(model, data, epochs=1, teacher=None, lr=2e-3, **kwargs) -> MaskedLatentTrainer:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    if "mask_fn" not in kwargs:
        kwargs["mask_fn"] = MultiBlockMaskGenerator(model.encoder.grid_size, seed=0)
    return MaskedLatentTrainer(
        device="cpu", max_epochs=epochs, train_data_loader=data, network=model, optimizer=opt,
        loss_function=MaskedLatentLoss(lamb=0.1, num_slices=64), teacher=teacher, seed=0, **{"amp": False, **kwargs},
    )  # fmt: skip


def _losses(trainer) -> list[dict]:
    out = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: out.append(dict(e.state.output)))
    trainer.run()
    return out


@pytest.mark.parametrize("with_teacher", [False, True])
def test_loss_decreases(with_teacher):
    model = _model()
    # momentum 1: fixed targets from the teacher (a moving teacher moves the targets, so its loss need not decrease)
    teacher = EMATeacher(model.encoder, momentum=1.0) if with_teacher else None
    out = _losses(_trainer(model, _data(), epochs=8, teacher=teacher, lr=5e-3))
    assert len(out) == 16 and set(OUTPUT_KEYS) <= set(out[0])
    first = sum(o["loss"] for o in out[:4]) / 4
    last = sum(o["loss"] for o in out[-4:]) / 4
    assert last < 0.8 * first, (first, last)
    assert all(o["effective_rank"] >= 1.0 and o["embedding_std"] > 0 for o in out)
    if teacher is not None:
        assert int(teacher.step) == 16  # one update per optimizer step
        assert all(not p.requires_grad for p in teacher.parameters())


def test_masks_from_batch_and_several_masks():
    model = _model()
    gen_short = MultiBlockMaskGenerator(model.encoder.grid_size, num_blocks=4, block_scale=(0.1, 0.1), seed=1)
    gen_long = MultiBlockMaskGenerator(model.encoder.grid_size, num_blocks=1, block_scale=(0.4, 0.4), seed=2)
    data = _data(n=4, batch=4)
    for gen, name in ((gen_short, "short"), (gen_long, "long")):
        c, t = gen(batch_size=4)
        data[0][f"context_{name}"], data[0][f"target_{name}"] = c, t
    # the same two masks from the batch and from a list-returning mask_fn give the same loss
    a = _losses(_trainer(_model(), data, context_key=["context_short", "context_long"],
                         target_key=["target_short", "target_long"], mask_fn=None))  # fmt: skip
    pairs = [(data[0]["context_short"], data[0]["target_short"]), (data[0]["context_long"], data[0]["target_long"])]
    b = _losses(_trainer(_model(), data, mask_fn=lambda batch_size: pairs))
    assert a[0]["loss"] == pytest.approx(b[0]["loss"], rel=1e-5)
    # the prediction term is the average of the per-mask terms (SIGReg draws new directions at every call)
    single = [_losses(_trainer(_model(), data, mask_fn=lambda batch_size, p=p: p))[0]["pred"] for p in pairs]
    assert a[0]["pred"] == pytest.approx(sum(single) / 2, rel=1e-5)


def test_3d_shapes():
    model = _model(spatial_dims=3)
    gen = MultiBlockMaskGenerator(model.encoder.grid_size, num_blocks=2, min_keep=2, seed=0)
    images = torch.randn(2, 1, 8, 8, 8)
    ctx, tgt = gen(batch_size=2)
    (out,) = model(images, ctx, tgt)
    assert out.pred.shape == out.targets.shape == (2, gen.num_target, 48)
    assert out.context_pooled.shape == (2, 48)
    res = _losses(_trainer(model, [{"image": images}], epochs=2, mask_fn=gen, amp=True))  # bf16 autocast
    assert len(res) == 2 and all(torch.isfinite(torch.tensor(r["loss"])) for r in res)


def test_checkpoint_round_trip(tmp_path):
    model = _model()
    teacher = EMATeacher(model.encoder, momentum=0.9)
    before = teacher.module.blocks[0].mlp.linear1.weight.clone()
    ckpt = JEPACheckpointer(tmp_path, save_dict={"teacher": teacher}, save_interval=None)
    trainer = _trainer(model, _data(), epochs=1, teacher=teacher, train_handlers=[ckpt])
    trainer.run()
    saved = torch.load(tmp_path / "checkpoint_00000002.pt", weights_only=True)
    assert any(k.startswith("encoder.") for k in saved["model"]) and any(
        k.startswith("predictor.") for k in saved["model"]
    )
    assert int(saved["teacher"]["step"]) == 2
    # the teacher followed the student: teacher = 0.9 * teacher + 0.1 * student after each step
    assert not torch.equal(before, teacher.module.blocks[0].mlp.linear1.weight)
    # mask generator state is checkpointed: restoring it reproduces the next masks
    assert any(g["kind"] == "randomizable" for g in saved["rng"]["generators"])
    model2 = _model(seed=1)
    teacher2 = EMATeacher(model2.encoder, momentum=0.9)
    trainer2 = _trainer(model2, _data(), epochs=1, teacher=teacher2)
    JEPACheckpointer(tmp_path, save_dict={"teacher": teacher2}).load(trainer2, tmp_path / "checkpoint_00000002.pt")
    for (k, v), v2 in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.equal(v, v2), k
    assert torch.equal(teacher.module.norm.weight, teacher2.module.norm.weight) and int(teacher2.step) == 2
    assert trainer2.state.iteration == 2


def test_errors():
    model = _model()
    with pytest.raises(ValueError, match="views_fn"):
        _trainer(model, _data(), views_fn=lambda x: x)
    with pytest.raises(ValueError, match="compute_terms"):
        MaskedLatentTrainer("cpu", 1, _data(), model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.L1Loss())
    with pytest.raises(ValueError, match="as many masks"):
        _trainer(model, _data(), mask_fn=None, context_key=["a", "b"], target_key="c")
    with pytest.raises(ValueError, match="no mask entries"):
        _trainer(model, _data(), mask_fn=None).run()
