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
from monai.networks.nets import ViT

from monai_jepa.networks import JEPA_VIT_PRESETS, JEPAViT, vit_base, vit_small, vit_tiny

TINY = {"hidden_size": 48, "mlp_dim": 96, "num_layers": 2, "num_heads": 3}

# (spatial_dims, img_size, patch_size, expected grid)
CASES = [
    (2, 32, 8, (4, 4)),
    (3, 16, 8, (2, 2, 2)),
    (3, (4, 32, 32), (2, 8, 8), (2, 4, 4)),  # 2D+t: time first, tubelet (2, 8, 8)
]


def make_vit(spatial_dims=2, img_size=32, patch_size=8, **kwargs):
    torch.manual_seed(0)
    return JEPAViT(
        in_channels=2, img_size=img_size, patch_size=patch_size, spatial_dims=spatial_dims, **{**TINY, **kwargs}
    )


def image(spatial_dims=2, img_size=32, batch=2):
    size = (img_size,) * spatial_dims if isinstance(img_size, int) else tuple(img_size)
    return torch.randn(batch, 2, *size, generator=torch.Generator().manual_seed(1))


def patch_slices(grid_index, patch_size):
    """Pixel slices of the patch at multi-dimensional token position ``grid_index``."""
    return tuple(slice(g * p, (g + 1) * p) for g, p in zip(grid_index, patch_size))


@pytest.mark.parametrize("spatial_dims,img_size,patch_size,grid", CASES)
def test_shapes_and_attributes(spatial_dims, img_size, patch_size, grid):
    net = make_vit(spatial_dims, img_size, patch_size).eval()
    tokens, pooled = net(image(spatial_dims, img_size, batch=3))
    n = int(torch.tensor(grid).prod())
    assert net.grid_size == grid and net.num_tokens == n and net.embed_dim == 48
    assert tokens.shape == (3, n, 48) and pooled.shape == (3, 48)
    torch.testing.assert_close(pooled, tokens.mean(dim=1))
    assert torch.isfinite(tokens).all()


@pytest.mark.parametrize("spatial_dims,img_size,patch_size,grid", CASES)
def test_indices_encode_only_context_tokens(spatial_dims, img_size, patch_size, grid):
    net = make_vit(spatial_dims, img_size, patch_size).eval()
    x = image(spatial_dims, img_size)
    n = net.num_tokens
    keep = torch.stack([torch.arange(0, n, 2), torch.arange(1, n, 2)])  # different context per sample
    tokens, pooled = net(x, indices=keep)
    assert tokens.shape == (2, n // 2, 48) and pooled.shape == (2, 48)

    # change the pixels of one patch that sample 0 keeps and sample 1 does not (token 0)
    changed = x.clone()
    changed[(slice(None), slice(None), *patch_slices((0,) * spatial_dims, net.patch_size))] += 5.0
    tokens2, _ = net(changed, indices=keep)
    assert not torch.allclose(tokens[0], tokens2[0], atol=1e-4)  # token 0 is context of sample 0
    torch.testing.assert_close(tokens[1], tokens2[1])  # sample 1 never sees token 0
    # without indices every token attends to the changed patch
    full, _ = net(x)
    full2, _ = net(changed)
    assert not torch.allclose(full[1], full2[1], atol=1e-4)


def test_indices_follow_flattened_token_order():
    net = make_vit(3, (4, 32, 32), (2, 8, 8)).eval()
    x = image(3, (4, 32, 32))
    full, _ = net(x)
    perm = torch.stack([torch.randperm(net.num_tokens, generator=torch.Generator().manual_seed(s)) for s in (2, 3)])
    permuted, pooled = net(x, indices=perm)
    # attention is permutation equivariant, so gathering every token in any order permutes the full output
    torch.testing.assert_close(
        permuted, torch.gather(full, 1, perm[..., None].expand(-1, -1, 48)), atol=1e-5, rtol=1e-5
    )
    torch.testing.assert_close(pooled, full.mean(1), atol=1e-5, rtol=1e-5)
    # the token at flat index t covers grid position unravel(t, grid_size): editing that patch changes only
    # the encoding of a context set made of that single token
    t = 21  # grid (2, 4, 4) -> position (1, 1, 1)
    single = torch.full((2, 1), t)
    base, _ = net(x, indices=single)
    changed = x.clone()
    changed[(slice(None), slice(None), *patch_slices((1, 1, 1), net.patch_size))] += 5.0
    assert not torch.allclose(base, net(changed, indices=single)[0], atol=1e-4)
    other = x.clone()
    other[(slice(None), slice(None), *patch_slices((1, 1, 2), net.patch_size))] += 5.0
    torch.testing.assert_close(base, net(other, indices=single)[0])


@pytest.mark.parametrize(
    "indices,match",
    [
        (torch.zeros(2, 3), "integer"),
        (torch.zeros(2, 3, dtype=torch.bool), "integer"),
        ([[0, 1], [2, 3]], "integer"),
        (torch.zeros(6, dtype=torch.long), "shape"),
        (torch.zeros(3, 4, dtype=torch.long), "shape"),
        (torch.zeros(2, 0, dtype=torch.long), "shape"),
        (torch.zeros(2, 17, dtype=torch.long), "shape"),
        (torch.tensor([[0, 16], [1, 2]]), r"\[0, 15\]"),
        (torch.tensor([[0, -1], [1, 2]]), r"\[0, 15\]"),
    ],
)
def test_invalid_indices(indices, match):
    net = make_vit()
    with pytest.raises(ValueError, match=match):
        net(image(), indices=indices)


def test_int32_indices_accepted():
    net = make_vit().eval()
    keep = torch.tensor([[0, 5], [7, 9]])
    torch.testing.assert_close(net(image(), indices=keep.int())[0], net(image(), indices=keep)[0])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"img_size": 30, "patch_size": 8}, "divisible by patch_size"),
        ({"spatial_dims": 3, "img_size": (4, 32, 30), "patch_size": (2, 8, 8)}, r"axis 2: 30 % 8"),
        ({"patch_size": (8, 8, 8)}, "patch_size must be"),
        ({"img_size": (32, 0)}, "img_size must contain positive"),
        ({"spatial_dims": 1, "img_size": 32}, "spatial_dims"),
        ({"num_heads": 5}, "divisible by num_heads"),
        ({"spatial_dims": 3, "img_size": 16, "hidden_size": 45, "num_heads": 3}, "divisible by 6"),
        ({"hidden_size": 42, "num_heads": 3}, "divisible by 4"),
        ({"pooling": "max"}, "max"),
        ({"pos_embed_type": "rope"}, "rope"),
        ({"use_flash_attention": True, "dropout_rate": 0.1}, "dropout_rate=0"),
    ],
)
def test_invalid_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_vit(**kwargs)


def test_wrong_input_shape():
    net = make_vit()
    for bad in (torch.zeros(2, 2, 32, 28), torch.zeros(2, 1, 32, 32), torch.zeros(2, 2, 32, 32, 32)):
        with pytest.raises(
            ValueError, match=r"\(B, 2, \*spatial\) with 2 spatial axes divisible by patch_size \(8, 8\)"
        ):
            net(bad)


@pytest.mark.parametrize("pos_embed_type", ["sincos", "learnable"])
def test_other_view_sizes_resample_position_embeddings(pos_embed_type):
    net = make_vit(3, (4, 32, 32), (2, 8, 8), pos_embed_type=pos_embed_type).eval()
    table = net.patch_embedding.position_embeddings
    assert net.position_embeddings() is table and net.position_embeddings((2, 4, 4)) is table
    local = net.position_embeddings((2, 2, 2))
    assert local.shape == (1, 8, 48)
    # a half-size grid averages 2x2 neighbourhoods of the full table in the in-plane axes (trilinear, exact at 1/2)
    full = table.reshape(2, 4, 4, 48)
    expected = full.reshape(2, 2, 2, 2, 2, 48).mean(dim=(2, 4)).reshape(1, 8, 48)
    torch.testing.assert_close(local, expected)
    x_local = image(3, (4, 16, 16))
    tokens, pooled = net(x_local)
    assert tokens.shape == (2, 8, 48) and pooled.shape == (2, 48)
    sub, _ = net(x_local, indices=torch.tensor([[0, 7], [3, 4]]))
    assert sub.shape == (2, 2, 48)
    with pytest.raises(ValueError, match=r"\[0, 7\]"):
        net(x_local, indices=torch.tensor([[0, 8], [3, 4]]))


def test_cls_pooling():
    net = make_vit(pooling="cls").eval()
    x = image()
    tokens, pooled = net(x)
    assert tokens.shape == (2, 16, 48) and pooled.shape == (2, 48)
    assert not torch.allclose(pooled, tokens.mean(1), atol=1e-3)
    # the class token is encoded too: changing it changes the pooled output and (through attention) the tokens
    with torch.no_grad():
        net.cls_token.add_(torch.randn(1, 1, 48, generator=torch.Generator().manual_seed(3)))
    tokens2, pooled2 = net(x)
    assert not torch.allclose(pooled, pooled2, atol=1e-3) and not torch.allclose(tokens, tokens2, atol=1e-4)
    tokens3, pooled3 = net(x, indices=torch.tensor([[0, 1, 2], [3, 4, 5]]))
    assert tokens3.shape == (2, 3, 48) and pooled3.shape == (2, 48)
    assert make_vit().cls_token is None


def test_position_embedding_types():
    sincos = make_vit()
    learnable = make_vit(pos_embed_type="learnable")
    assert not sincos.patch_embedding.position_embeddings.requires_grad
    assert learnable.patch_embedding.position_embeddings.requires_grad
    assert sincos.patch_embedding.position_embeddings.shape == (1, 16, 48)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_gradient_checkpointing_matches(pooling):
    ref = make_vit(pooling=pooling, pos_embed_type="learnable").train()
    ckpt = make_vit(pooling=pooling, pos_embed_type="learnable", gradient_checkpointing=True).train()
    ckpt.load_state_dict(ref.state_dict())
    x = image()
    keep = torch.tensor([[0, 3, 7, 9], [1, 2, 4, 15]])
    outputs = []
    for net in (ref, ckpt):
        net.zero_grad()
        xi = x.clone().requires_grad_(True)
        tokens, pooled = net(xi, indices=keep)
        (tokens.pow(2).mean() + pooled.sin().sum()).backward()
        outputs.append((tokens.detach(), pooled.detach(), xi.grad, {k: p.grad for k, p in net.named_parameters()}))
    (t1, p1, g1, grads1), (t2, p2, g2, grads2) = outputs
    torch.testing.assert_close(t1, t2)
    torch.testing.assert_close(p1, p2)
    torch.testing.assert_close(g1, g2)
    assert grads1.keys() == grads2.keys()
    for k in grads1:
        if grads1[k] is None:
            assert grads2[k] is None, k
        else:
            torch.testing.assert_close(grads1[k], grads2[k], msg=k)


def test_every_trainable_parameter_gets_a_gradient():
    # required by DistributedDataParallel with its default find_unused_parameters=False
    net = make_vit(pooling="cls", pos_embed_type="learnable")
    tokens, pooled = net(image())
    (tokens.sum() + pooled.sum()).backward()
    missing = [k for k, p in net.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []


def test_weights_copy_into_monai_vit():
    net = make_vit(qkv_bias=True).eval()
    monai_vit = ViT(
        in_channels=2,
        img_size=32,
        patch_size=8,
        hidden_size=48,
        mlp_dim=96,
        num_layers=2,
        num_heads=3,
        pos_embed_type="sincos",
        spatial_dims=2,
        qkv_bias=True,
    ).eval()
    result = monai_vit.load_state_dict(net.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert all(".cross_attn." in k for k in result.missing_keys)  # present only with MONAI 1.5
    x = image()
    out, _ = monai_vit(x)
    torch.testing.assert_close(net(x)[0], out)


def test_presets():
    for name, hidden, heads in (("vit_tiny", 192, 3), ("vit_small", 384, 6), ("vit_base", 768, 12)):
        assert JEPA_VIT_PRESETS[name] == {
            "hidden_size": hidden,
            "num_heads": heads,
            "mlp_dim": 4 * hidden,
            "num_layers": 12,
        }
    tiny = vit_tiny(in_channels=1, img_size=32, patch_size=16, spatial_dims=2)
    assert tiny.embed_dim == 192 and len(tiny.blocks) == 12
    assert tiny.blocks[0].mlp.linear1.out_features == 768 and tiny.blocks[0].attn.num_heads == 3
    small = vit_small(in_channels=1, img_size=16, patch_size=16, spatial_dims=2, num_layers=1)
    base = vit_base(in_channels=1, img_size=(2, 16, 16), patch_size=(2, 16, 16), spatial_dims=3, num_layers=1)
    assert (small.embed_dim, len(small.blocks), small.blocks[0].attn.num_heads) == (384, 1, 6)
    assert (base.embed_dim, len(base.blocks), base.blocks[0].attn.num_heads) == (768, 1, 12)
    tokens, pooled = base(torch.randn(1, 1, 2, 16, 16))
    assert tokens.shape == (1, 1, 768) and pooled.shape == (1, 768)
    with pytest.raises(ValueError, match="hidden_size"):
        vit_tiny(in_channels=1, img_size=32, patch_size=16, spatial_dims=2, hidden_size=48)
