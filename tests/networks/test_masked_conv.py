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
import torch.nn.functional as F
from ignite.engine import Events
from monai.networks.nets import SegResNet, UNet

from monai_jepa.engines import JEPACheckpointer, MaskedLatentTrainer
from monai_jepa.losses import MaskedLatentLoss
from monai_jepa.networks import (
    JEPAPredictor,
    MaskedConvEncoder,
    MaskedLatentModel,
    MaskedReconstructionModel,
    encoder_parameter_names,
    encoder_stages,
    load_pretrained_encoder,
    patchify,
)
from monai_jepa.transforms import MultiBlockMaskGenerator

SIZE = (16, 16, 16)


def _unet(seed: int = 0, dims: int = 3) -> UNet:
    torch.manual_seed(seed)
    return UNet(dims, 1, 3, channels=(4, 8, 16), strides=(2, 2), num_res_units=1)


def _masks(enc: MaskedConvEncoder, batch: int = 2, seed: int = 0):
    return MultiBlockMaskGenerator(enc.grid_size, num_blocks=2, block_scale=(0.2, 0.3), min_keep=2, seed=seed)(batch)


def _hidden(enc: MaskedConvEncoder, ctx: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """1 where a voxel of ``like`` is outside the context."""
    return 1.0 - F.interpolate(enc.visible_mask(ctx, like.shape[0]), size=like.shape[2:], mode="nearest")


def test_patchify_is_a_pixel_unshuffle():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).view(2, 3, 4, 6)
    t = patchify(x, (2, 3))
    assert t.shape == (2, 4, 3 * 6)
    # token 1 is grid cell (0, 1): rows 0-1, columns 3-5, channels first
    assert torch.equal(t[0, 1], x[0, :, 0:2, 3:6].reshape(-1))
    with pytest.raises(ValueError, match="divisible"):
        patchify(x, (3, 3))


def test_unet_levels_tokens_and_shapes():
    enc = MaskedConvEncoder(_unet(), SIZE)
    assert len(encoder_stages(enc.net)) == 3
    assert enc.level_channels == [4, 8, 16] and enc.level_strides == [(2, 2, 2), (4, 4, 4), (4, 4, 4)]
    # default levels: the deepest (stride 4) and the deepest of a finer stride (2), rearranged on the 4^3 grid
    assert enc.feature_levels == (0, 2) and enc.factors == [(2, 2, 2), (1, 1, 1)]
    assert enc.grid_size == (4, 4, 4) and enc.embed_dim == 4 * 8 + 16 and enc.pooled_dim == 16
    x = torch.randn(2, 1, *SIZE)
    tokens, pooled = enc(x)
    assert tokens.shape == (2, 64, 48) and pooled.shape == (2, 16)
    # token_norm: each level's part is layer-normalised on its own
    assert torch.allclose(tokens[..., :32].mean(-1), torch.zeros(2, 64), atol=1e-5)
    assert torch.allclose(tokens[..., 32:].std(-1, unbiased=False), torch.ones(2, 64), atol=1e-3)
    ctx, _ = _masks(enc)
    t_ctx, p_ctx = enc(x, ctx)
    assert t_ctx.shape == (2, ctx.shape[1], 48) and p_ctx.shape == (2, 16)


def test_masked_content_does_not_reach_the_context_features():
    enc = MaskedConvEncoder(_unet(), SIZE)
    ctx, _ = _masks(enc)
    x = torch.randn(2, 1, *SIZE)
    changed = x + 10.0 * torch.randn_like(x) * _hidden(enc, ctx, x)  # only the hidden voxels change
    a, b = enc(x, ctx), enc(changed, ctx)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    # every level is exactly empty outside the context (no fill-in through the convolutions)
    for f in enc.features(changed, ctx):
        assert float((f * _hidden(enc, ctx, f)).abs().max()) == 0.0
    # without indices the same voxels do change the features
    assert not torch.equal(enc(x)[0], enc(changed)[0])


def test_token_pooling_is_the_mean_of_the_visible_tokens_and_does_not_leak():
    enc = MaskedConvEncoder(_unet(), SIZE, pooling="tokens")
    assert enc.pooled_dim == enc.embed_dim == 48 and "pooling=tokens" in repr(enc)
    x = torch.randn(3, 1, *SIZE)
    tokens, pooled = enc(x)
    assert pooled.shape == (3, 48) and torch.allclose(pooled, tokens.mean(1))
    ctx, _ = _masks(enc, batch=3)
    t_ctx, p_ctx = enc(x, ctx)
    assert torch.allclose(p_ctx, t_ctx.mean(1))
    changed = x + 10.0 * torch.randn_like(x) * _hidden(enc, ctx, x)
    assert torch.equal(p_ctx, enc(changed, ctx)[1])
    # the tokens' mean depends on the image, the deepest map's mean barely does (instance norm)
    deep = MaskedConvEncoder(_unet(), SIZE)
    images = torch.randn(16, 1, *SIZE) * torch.linspace(0.2, 3.0, 16).view(-1, 1, 1, 1, 1)
    with torch.no_grad():
        spread = {name: float(F.normalize(e(images)[1], dim=1).std(0).mean()) for name, e in (("t", enc), ("d", deep))}
    assert spread["t"] > 1.5 * spread["d"]  # 1.8-2.3x over UNet seeds 0-4
    with pytest.raises(ValueError, match="Unsupported option .max"):
        MaskedConvEncoder(_unet(), SIZE, pooling="max")


def test_remask_false_masks_only_the_input():
    enc = MaskedConvEncoder(_unet(), SIZE, remask=False)
    ctx, _ = _masks(enc)
    x = torch.randn(2, 1, *SIZE)
    changed = x + torch.randn_like(x) * _hidden(enc, ctx, x)
    assert torch.equal(enc(x, ctx)[0], enc(changed, ctx)[0])  # still no leak: the input is zeroed
    deep = enc.features(x, ctx)[-1]
    assert float((deep * _hidden(enc, ctx, deep)).abs().max()) > 0  # but the hidden region fills in


def test_segresnet_and_2d():
    enc = MaskedConvEncoder(SegResNet(3, 8, 1, 2, blocks_down=(1, 1, 1), blocks_up=(1, 1)), SIZE)
    assert enc.level_strides[-1] == (4, 4, 4) and enc.grid_size == (4, 4, 4)
    ctx, _ = _masks(enc)
    x = torch.randn(2, 1, *SIZE)
    changed = x + torch.randn_like(x) * _hidden(enc, ctx, x)
    assert torch.equal(enc(x, ctx)[0], enc(changed, ctx)[0])
    enc2 = MaskedConvEncoder(_unet(dims=2), (16, 16), patch_size=8)
    assert enc2.grid_size == (2, 2) and enc2(torch.randn(1, 1, 16, 16))[0].shape == (1, 4, enc2.embed_dim)


def test_errors():
    with pytest.raises(TypeError, match="UNet and SegResNet"):
        MaskedConvEncoder(torch.nn.Conv3d(1, 1, 3), SIZE)
    with pytest.raises(ValueError, match="divisible"):
        MaskedConvEncoder(_unet(), (16, 16, 18))
    with pytest.raises(ValueError, match="does not divide"):
        MaskedConvEncoder(_unet(), SIZE, patch_size=2)
    with pytest.raises(ValueError, match="feature_levels"):
        MaskedConvEncoder(_unet(), SIZE, feature_levels=(5,))
    enc = MaskedConvEncoder(_unet(), SIZE)
    with pytest.raises(ValueError, match="expected input"):
        enc(torch.randn(1, 2, *SIZE))
    with pytest.raises(ValueError, match="indices must lie"):
        enc(torch.randn(1, 1, *SIZE), torch.tensor([[0, 64]]))


def test_jepa_gradients_finite_and_reach_the_encoder_only():
    enc = MaskedConvEncoder(_unet(), SIZE)
    model = MaskedLatentModel(enc, JEPAPredictor(enc.grid_size, enc.embed_dim, 24, depth=1, num_heads=2))
    ctx, tgt = _masks(enc)
    (out,) = model(torch.randn(2, 1, *SIZE), ctx, tgt)
    assert out.pred.shape == out.targets.shape == (2, tgt.shape[1], enc.embed_dim)
    terms = MaskedLatentLoss(lamb=0.1, num_slices=32).compute_terms(
        out.pred, out.targets, [out.context_pooled, out.targets.flatten(0, 1)]
    )
    terms["loss"].backward()
    stages = {id(p) for s in encoder_stages(enc.net) for p in s.parameters()}
    for name, p in model.named_parameters():
        if not p.requires_grad:  # fixed sin-cos position embeddings
            continue
        if id(p) in stages or name.startswith("predictor."):
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
        else:  # the decoder is not part of the objective
            assert p.grad is None, name


def test_reconstruction_peer():
    mae = MaskedReconstructionModel(MaskedConvEncoder(_unet(), SIZE))
    ctx, tgt = _masks(mae.encoder)
    x = torch.randn(2, 1, *SIZE)
    (out,) = mae(x, ctx, tgt)
    assert out.pred.shape == out.targets.shape == (2, tgt.shape[1], 64)
    # the targets are the input's voxels of the target tokens
    assert torch.equal(out.targets, torch.gather(patchify(x, (4, 4, 4)), 1, tgt.unsqueeze(-1).expand(-1, -1, 64)))
    # the prediction does not see the hidden voxels
    changed = x + torch.randn_like(x) * _hidden(mae.encoder, ctx, x)
    assert torch.equal(mae(changed, ctx, tgt)[0].pred, out.pred)
    loss = MaskedLatentLoss(lamb=0.0, loss="l2").compute_terms(out.pred, out.targets, [out.context_pooled])
    loss["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in mae.encoder.net.parameters())
    with pytest.raises(ValueError, match="no target_tokens"):
        mae(x, ctx, tgt, target_tokens=torch.zeros(1))


def _train(model, tmp_path, epochs, resume=False, stop_at=None):
    g = torch.Generator().manual_seed(0)
    data = [{"image": torch.randn(2, 1, *SIZE, generator=g)} for _ in range(3)]
    trainer = MaskedLatentTrainer(
        device="cpu", max_epochs=epochs, train_data_loader=data, network=model,
        optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3), loss_function=MaskedLatentLoss(0.1, num_slices=32),
        mask_fn=MultiBlockMaskGenerator(model.encoder.grid_size, num_blocks=2, min_keep=2, seed=0), amp=False,
        channels_last=False, seed=0,
        train_handlers=[JEPACheckpointer(tmp_path, save_interval=1, resume_from="auto" if resume else None)],
    )  # fmt: skip
    if stop_at is not None:
        trainer.add_event_handler(Events.ITERATION_COMPLETED(once=stop_at), lambda e: e.terminate())
    trainer.run()
    return trainer


def test_trainer_resume_is_exact_and_weights_load_into_the_unet(tmp_path):
    def model(seed):
        enc = MaskedConvEncoder(_unet(seed), SIZE)
        return MaskedLatentModel(enc, JEPAPredictor(enc.grid_size, enc.embed_dim, 24, depth=1, num_heads=2))

    full = model(0)
    _train(full, tmp_path / "a", epochs=2)
    part = model(0)
    _train(part, tmp_path / "b", epochs=2, stop_at=4)  # interrupted mid-epoch
    resumed = model(1)
    trainer = _train(resumed, tmp_path / "b", epochs=2, resume=True)
    assert trainer.state.iteration == 6
    for (k, v), v2 in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(v, v2), k
    # the checkpoint's ``encoder.net.`` entries are a complete MONAI UNet
    unet = load_pretrained_encoder(tmp_path / "a" / "checkpoint_00000006.pt", _unet(5), prefix="encoder.net.")
    for k, v in unet.state_dict().items():
        assert torch.equal(v, full.encoder.net.state_dict()[k]), k


def test_encoder_parameter_names_are_the_pretrained_part():
    """The names cover exactly the parameters that get gradients from the masked latent objective (the encoder
    path), for a UNet and a SegResNet."""
    for net in (_unet(), SegResNet(3, 8, 1, 2, blocks_down=(1, 1, 1))):
        enc = MaskedConvEncoder(net, SIZE)
        model = MaskedLatentModel(enc, JEPAPredictor(enc.grid_size, enc.embed_dim, 24, depth=1, num_heads=2))
        ctx, tgt = _masks(enc)
        (out,) = model(torch.randn(2, 1, *SIZE), ctx, tgt)
        F.mse_loss(out.pred, out.targets).backward()
        with_grad = {n for n, p in net.named_parameters() if p.grad is not None}
        names = encoder_parameter_names(net)
        assert names and set(names) == with_grad and len(names) < len(list(net.parameters()))
    with pytest.raises(TypeError, match="UNet and SegResNet"):
        encoder_parameter_names(torch.nn.Linear(2, 2))
