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
"""Segmentation networks from a pretrained :py:class:`~monai_jepa.networks.JEPAViT`: MONAI's UNETR with the
pretrained weights copied in, and :py:class:`JEPASegmenter`, a light UNETR-style decoder for any patch size."""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.blocks import UnetOutBlock, UnetrBasicBlock, UnetrUpBlock
from monai.networks.blocks.dynunet_block import get_conv_layer
from monai.networks.nets import UNETR
from monai.networks.utils import copy_model_state
from torch.utils.checkpoint import checkpoint

from monai_jepa.networks.vit import JEPAViT
from monai_jepa.utils.fileio import load_checkpoint_file

__all__ = [
    "JEPASegmenter",
    "build_pretrained",
    "load_pretrained_encoder",
    "unetr_from_jepa_vit",
    "UNETR_NUM_LAYERS",
    "UNETR_PATCH_SIZE",
]

UNETR_PATCH_SIZE = 16
"""Patch size hard-coded in MONAI's ``UNETR`` (``monai.networks.nets.UNETR``)."""
UNETR_NUM_LAYERS = 12
"""Number of transformer blocks hard-coded in MONAI's ``UNETR``."""

_POS_KEY = "patch_embedding.position_embeddings"
_PATCH_KEY = "patch_embedding.patch_embeddings.weight"
logger = logging.getLogger(__name__)


def _infer_grid(num_tokens: int, spatial_dims: int) -> tuple[int, ...] | None:
    side = round(num_tokens ** (1.0 / spatial_dims))
    return (side,) * spatial_dims if side**spatial_dims == num_tokens else None


def unetr_from_jepa_vit(
    vit_or_state_dict: JEPAViT | Mapping[str, torch.Tensor],
    in_channels: int,
    out_channels: int,
    img_size: Sequence[int] | int,
    feature_size: int = 16,
    num_heads: int | None = None,
    norm_name: tuple | str = "instance",
    conv_block: bool = True,
    res_block: bool = True,
    dropout_rate: float = 0.0,
    return_keys: bool = False,
) -> UNETR | tuple[UNETR, list[str], list[str]]:
    """
    Build a MONAI ``UNETR`` whose ``vit`` matches a pretrained :py:class:`JEPAViT` and copy its weights in.

    The ViT configuration (hidden size, MLP width, depth, ``qkv_bias``, spatial dims, input channels) is read from the
    weights; ``num_heads`` is read from the module (give it when passing a state dict). MONAI's UNETR hard-codes a
    patch size of 16 and 12 transformer blocks, so other encoders raise a ``ValueError`` (use
    :py:class:`JEPASegmenter` for them). The position embeddings are resampled when ``img_size`` gives another token
    grid than pretraining. Copying uses ``monai.networks.utils.copy_model_state``; every encoder parameter must
    transfer, except the class token (UNETR has none).

    Args:
        vit_or_state_dict: a :py:class:`JEPAViT` or its ``state_dict`` (e.g. from
            :py:func:`load_pretrained_encoder` or a checkpoint's ``"model"`` entry with the ``"encoder."`` prefix
            removed).
        in_channels: input channels; must equal the pretrained encoder's.
        out_channels: number of segmentation classes.
        img_size: input spatial size (divisible by 16 on every axis).
        feature_size: UNETR decoder width.
        num_heads: attention heads; read from the module when None (required with a state dict).
        norm_name: decoder normalisation (MONAI name).
        conv_block: UNETR ``conv_block``.
        res_block: UNETR ``res_block``.
        dropout_rate: ViT dropout rate.
        return_keys: also return the lists of copied and skipped ``UNETR`` keys.

    Returns:
        the ``UNETR``, or ``(unetr, copied_keys, skipped_keys)`` with ``return_keys=True`` (keys of ``unetr``).

    Raises:
        ValueError: when the encoder cannot be expressed as UNETR's ViT (patch size, depth, channels) or a parameter
            that should transfer does not.

    Example::

        >>> vit = vit_base(in_channels=1, img_size=96, patch_size=16, spatial_dims=3)
        >>> net = unetr_from_jepa_vit(vit, in_channels=1, out_channels=14, img_size=96)
    """
    if isinstance(vit_or_state_dict, nn.Module):
        src = {k: v.detach() for k, v in vit_or_state_dict.state_dict().items()}
        if num_heads is None:
            num_heads = int(vit_or_state_dict.blocks[0].attn.num_heads)
    elif isinstance(vit_or_state_dict, Mapping):
        src = dict(vit_or_state_dict)
    else:
        raise ValueError(f"vit_or_state_dict must be a JEPAViT or a state dict, got {type(vit_or_state_dict)}.")
    if _PATCH_KEY not in src:
        raise ValueError(
            f"the weights have no '{_PATCH_KEY}': not a JEPAViT state dict with a conv patch embedding "
            f"(keys start with {sorted(src)[:5]}; strip a prefix such as 'encoder.' first)."
        )
    patch_w = src[_PATCH_KEY]
    hidden_size, src_channels, patch_size = patch_w.shape[0], patch_w.shape[1], tuple(patch_w.shape[2:])
    spatial_dims = len(patch_size)
    if any(p != UNETR_PATCH_SIZE for p in patch_size):
        raise ValueError(
            f"MONAI's UNETR hard-codes patch_size {UNETR_PATCH_SIZE}, but the JEPAViT was pretrained with patch_size "
            f"{patch_size}; use JEPASegmenter, which works with any patch size."
        )
    num_layers = len({m.group(1) for k in src if (m := re.match(r"blocks\.(\d+)\.", k))})
    if num_layers != UNETR_NUM_LAYERS:
        raise ValueError(
            f"MONAI's UNETR hard-codes {UNETR_NUM_LAYERS} transformer blocks, but the JEPAViT has {num_layers}; "
            "use JEPASegmenter."
        )
    if in_channels != src_channels:
        raise ValueError(f"in_channels={in_channels} but the JEPAViT was pretrained with {src_channels} channels.")
    if num_heads is None:
        raise ValueError("num_heads is required when vit_or_state_dict is a state dict (it is not in the weights).")
    mlp_dim = src["blocks.0.mlp.linear1.weight"].shape[0]
    net = UNETR(
        in_channels=in_channels,
        out_channels=out_channels,
        img_size=img_size,
        feature_size=feature_size,
        hidden_size=hidden_size,
        mlp_dim=mlp_dim,
        num_heads=num_heads,
        proj_type="conv",
        norm_name=norm_name,
        conv_block=conv_block,
        res_block=res_block,
        dropout_rate=dropout_rate,
        spatial_dims=spatial_dims,
        qkv_bias="blocks.0.attn.qkv.bias" in src,
    )
    dst_pos = net.vit.patch_embedding.position_embeddings
    if _POS_KEY in src and src[_POS_KEY].shape != dst_pos.shape:
        grid = (
            tuple(vit_or_state_dict.grid_size)
            if isinstance(vit_or_state_dict, JEPAViT)
            else _infer_grid(src[_POS_KEY].shape[1], spatial_dims)
        )
        if grid is None:
            raise ValueError(
                f"cannot resample the position embeddings {tuple(src[_POS_KEY].shape)} to img_size {img_size}: pass "
                "the JEPAViT module (its token grid is not cubic) or use the pretraining img_size."
            )
        table = src[_POS_KEY].transpose(1, 2).reshape(1, hidden_size, *grid).float()
        mode = "bicubic" if spatial_dims == 2 else "trilinear"
        table = F.interpolate(table, size=tuple(net.feat_size), mode=mode, align_corners=False)
        src[_POS_KEY] = table.flatten(2).transpose(1, 2).to(dst_pos.dtype)
    expected = [k for k in src if k != "cls_token"]
    _, copied, skipped = copy_model_state(net, src, dst_prefix="vit.")
    failed = sorted(k for k in expected if f"vit.{k}" not in copied)
    if failed:
        raise ValueError(
            f"these JEPAViT parameters did not transfer into UNETR.vit (name or shape mismatch): {failed}."
        )
    logger.info(f"copied {len(copied)} JEPAViT tensors into UNETR.vit; {len(skipped)} UNETR tensors keep their init.")
    return (net, sorted(copied), sorted(skipped)) if return_keys else net


def _stage_factors(patch_size: Sequence[int], num_stages: int) -> list[tuple[int, ...]]:
    """Split each axis' patch size into ``num_stages`` upsampling factors, finest stage first.

    The prime factors of each axis (smallest first) go to the finest stages; the remainder joins the coarsest stage.
    """
    per_axis = []
    for p in patch_size:
        primes, n, f = [], int(p), 2
        while n > 1:
            while n % f == 0:
                primes.append(f)
                n //= f
            f += 1
        factors = primes[: num_stages - 1] + [math.prod(primes[num_stages - 1 :])]
        factors += [1] * (num_stages - len(factors))
        per_axis.append(factors)
    return [tuple(axis[s] for axis in per_axis) for s in range(num_stages)]


class JEPASegmenter(nn.Module):
    """
    UNETR-style segmentation network on the tokens of any :py:class:`JEPAViT` (any patch size, 2D or 3D).

    The encoder's transformer blocks run one by one and the tokens after ``feature_layers`` are reshaped to feature
    maps on the token grid. The deepest map (with the encoder's final LayerNorm when it is the last block) is
    decoded by MONAI ``UnetrUpBlock`` s, each upsampling one level and merging a skip connection: the maps of the
    shallower layers, upsampled by transposed convolutions to their level (as UNETR's ``UnetrPrUpBlock``), and a
    convolution of the input at full resolution (``UnetrBasicBlock``). The patch size of each axis is split into
    ``len(feature_layers)`` upsampling factors (e.g. 16 -> 2, 2, 2, 2 like UNETR; 4 -> 2, 2, 1, 1;
    ``(2, 16, 16)`` -> ``(2, 2, 2), (1, 2, 2), ...``). Decoder widths are ``feature_size * 2**level``.

    Args:
        encoder: the (pretrained) :py:class:`JEPAViT`, or a function returning one: with ``"_mode_": "callable"``
            in a bundle config every call of the segmenter then builds its own encoder (a network factory).
        out_channels: number of output channels (classes).
        feature_layers: 1-based indices of the blocks whose tokens feed the decoder, increasing; default 4 evenly
            spaced blocks ending with the last (3, 6, 9, 12 for 12 blocks).
        feature_size: decoder width at full resolution.
        norm_name: decoder normalisation (MONAI name).
        res_block: residual convolution blocks in the decoder.
        freeze_encoder: do not train the encoder (its parameters get ``requires_grad=False``).

    Example::

        >>> enc = JEPAViT(1, img_size=(16, 64, 64), patch_size=(2, 8, 8), spatial_dims=3, hidden_size=96, mlp_dim=192,
        ...               num_layers=4, num_heads=3)
        >>> net = JEPASegmenter(enc, out_channels=3)
        >>> net(torch.randn(2, 1, 16, 64, 64)).shape
        torch.Size([2, 3, 16, 64, 64])
    """

    def __init__(
        self,
        encoder: JEPAViT | Callable[[], JEPAViT],
        out_channels: int,
        feature_layers: Sequence[int] | None = None,
        feature_size: int = 16,
        norm_name: tuple | str = "instance",
        res_block: bool = True,
        freeze_encoder: bool = False,
    ) -> None:
        super().__init__()
        if callable(encoder) and not isinstance(encoder, nn.Module):
            encoder = encoder()
        if not isinstance(encoder, JEPAViT):
            raise ValueError(f"encoder must be a JEPAViT, got {type(encoder).__name__}.")
        if out_channels < 1 or feature_size < 1:
            raise ValueError(f"out_channels and feature_size must be positive, got {out_channels}, {feature_size}.")
        depth = len(encoder.blocks)
        if feature_layers is None:
            feature_layers = [math.ceil(depth * k / 4) for k in range(1, 5)]
        layers = [int(i) for i in feature_layers]
        if not layers or any(not 1 <= i <= depth for i in layers) or layers != sorted(layers):
            raise ValueError(
                f"feature_layers must be increasing block indices in [1, {depth}], got {list(feature_layers)}."
            )
        self.encoder = encoder.requires_grad_(not freeze_encoder)
        self.feature_layers = layers
        self.out_channels = out_channels
        nd, hidden, levels = encoder.spatial_dims, encoder.embed_dim, len(layers)
        self.factors = _stage_factors(encoder.patch_size, levels)  # factors[s]: upsampling from level s+1 to s
        width = [feature_size * 2**level for level in range(levels)]

        def up_path(level: int) -> nn.Sequential:  # token grid (level `levels`) -> `level`, by transposed convs
            convs = [
                get_conv_layer(nd, hidden if i == levels else width[level], width[level], kernel_size=f, stride=f,
                               conv_only=True, is_transposed=True)
                for i, f in ((i, self.factors[i - 1]) for i in range(levels, level, -1))
            ]  # fmt: skip
            return nn.Sequential(*convs)

        self.input_block = UnetrBasicBlock(nd, encoder.in_channels, width[0], 3, 1, norm_name, res_block=res_block)
        self.skips = nn.ModuleList(up_path(level) for level in range(1, levels))
        self.decoders = nn.ModuleList(
            UnetrUpBlock(nd, hidden if level == levels - 1 else width[level + 1], width[level], 3, self.factors[level],
                         norm_name, res_block=res_block)
            for level in range(levels)
        )  # fmt: skip
        self.out = UnetOutBlock(nd, width[0], out_channels)

    def hidden_states(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The token maps of ``feature_layers``, each ``(B, D, *grid)`` (the last one after the final LayerNorm when
        it is the encoder's last block)."""
        enc = self.encoder
        enc._check_input(x)
        patches = enc.patch_embedding.patch_embeddings(x)  # (B, D, *grid)
        grid = patches.shape[2:]
        tokens = patches.flatten(2).transpose(1, 2) + enc.position_embeddings(grid)
        tokens = enc.patch_embedding.dropout(tokens)
        n_cls = 0
        if enc.cls_token is not None:
            tokens = torch.cat([enc.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
            n_cls = 1
        maps = []
        for i, block in enumerate(enc.blocks, start=1):
            if enc.gradient_checkpointing and torch.is_grad_enabled():
                tokens = checkpoint(block, tokens, use_reentrant=False)
            else:
                tokens = block(tokens)
            for _ in range(self.feature_layers.count(i)):
                out = enc.norm(tokens) if i == len(enc.blocks) else tokens
                maps.append(out[:, n_cls:].transpose(1, 2).reshape(x.shape[0], -1, *grid))
            if i == self.feature_layers[-1]:
                break
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: input ``(B, in_channels, *spatial)``, spatial sizes divisible by the encoder's patch size.

        Returns:
            logits ``(B, out_channels, *spatial)``.
        """
        maps = self.hidden_states(x)
        y = maps[-1]
        for level in range(len(maps) - 1, -1, -1):
            skip = self.skips[level - 1](maps[level - 1]) if level > 0 else self.input_block(x)
            y = self.decoders[level](y, skip)
        return self.out(y)


def load_pretrained_encoder(
    path: str | os.PathLike, encoder: nn.Module, prefix: str = "encoder.", strict: bool = True
) -> nn.Module:
    """
    Load the encoder weights of a pretraining checkpoint into ``encoder``.

    Accepts a :py:class:`~monai_jepa.engines.JEPACheckpointer` file (the weights of a
    :py:class:`~monai_jepa.networks.LeJEPAModel` / :py:class:`~monai_jepa.networks.MaskedLatentModel` under
    ``"model"``) or a plain state dict; the entries starting with ``prefix`` are loaded (prefix removed). The file is
    read with ``torch.load(..., weights_only=True)``.

    Args:
        path: the checkpoint file.
        encoder: the module to fill (e.g. a :py:class:`JEPAViT` built with the pretraining configuration).
        prefix: prefix of the encoder's entries in the saved model (``""`` for an encoder-only state dict).
        strict: raise when an encoder parameter is missing from the file or the file holds unexpected entries.

    Returns:
        ``encoder``, with the loaded weights.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        RuntimeError: when the file cannot be read, holds no entry with ``prefix``, or (``strict``) keys or shapes
            do not match; the message names the file and the keys.

    Example::

        >>> vit = vit_small(in_channels=1, img_size=224, patch_size=16, spatial_dims=2)
        >>> load_pretrained_encoder("models/checkpoint_00010000.pt", vit)
        >>> seg = JEPASegmenter(vit, out_channels=2)
    """
    path = Path(path)
    ckpt = load_checkpoint_file(path, "pretrained checkpoint")
    state = ckpt.get("model", ckpt) if isinstance(ckpt, Mapping) else None
    if not isinstance(state, Mapping):
        raise RuntimeError(f"'{path}' holds no state dict (expected a dict, or a checkpoint with a 'model' entry).")
    weights = {k[len(prefix) :]: v for k, v in state.items() if isinstance(k, str) and k.startswith(prefix)}
    if not weights:
        raise RuntimeError(
            f"'{path}' has no entries with prefix '{prefix}'; its keys start with {sorted(state)[:5]}. "
            "Set prefix ('' for an encoder-only state dict)."
        )
    try:
        result = encoder.load_state_dict(weights, strict=strict)
    except RuntimeError as e:
        raise RuntimeError(f"the encoder weights in '{path}' (prefix '{prefix}') do not fit the encoder: {e}") from e
    if result.missing_keys:
        logger.warning(f"encoder parameters not found in '{path}': {result.missing_keys}.")
    return encoder


def build_pretrained(
    factory: Callable[[], nn.Module], path: str | os.PathLike, prefix: str = "encoder.", strict: bool = True
) -> nn.Module:
    """``factory()`` with the weights of the checkpoint ``path`` loaded by :func:`load_pretrained_encoder`.

    With ``"_mode_": "callable"`` in a bundle config this is a factory of pretrained networks, each call building and
    filling a fresh one (what the few-label protocols need for every label count and seed)::

        "unet_vjepa": {
            "_target_": "monai_jepa.networks.build_pretrained",
            "_mode_": "callable",
            "factory": "@unet_def",
            "path": "@model_file",
            "prefix": "encoder.net."
        }

    Args:
        factory: builds the network (e.g. a ``"_mode_": "callable"`` network definition).
        path: the pretraining checkpoint, read with ``weights_only=True``.
        prefix: prefix of the network's entries in the checkpoint.
        strict: as in :func:`load_pretrained_encoder`.
    """
    return load_pretrained_encoder(path, factory(), prefix=prefix, strict=strict)
