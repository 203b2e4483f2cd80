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
"""A MONAI segmentation CNN (``UNet``, ``SegResNet``) seen as a token encoder for masked latent prediction.

:class:`MaskedConvEncoder` wraps the whole segmentation network and runs only its encoder path. With context
indices, the tokens outside the context are hidden from every convolution of that path: the input is zeroed there,
and the input and output of every convolution and of every stage are multiplied by the visible mask at that
resolution (sparse
convolution emulated on dense tensors, so masked regions stay empty at every depth and their content cannot reach
the context features). The token features are the encoder's feature maps at one or more levels, rearranged onto the
token grid (a level of stride ``s`` contributes ``C * (patch / s)^d`` values per token), so the predictor regresses
features at several scales. After pretraining, ``encoder.net`` IS the segmentation network: every pretrained part
(the encoder path, whose stage outputs are also the skip features) is in place, the decoder starts at random.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.layers import SkipConnection
from monai.networks.nets import SegResNet, UNet
from monai.utils import ensure_tuple_rep, look_up_option

__all__ = ["MaskedConvEncoder", "encoder_parameter_names", "encoder_stages", "masked_mean", "patchify"]

POOLING = ("deep", "tokens")
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def encoder_stages(net: nn.Module) -> list[nn.Module]:
    """The encoder path of a MONAI ``UNet`` or ``SegResNet`` as stages, finest first; each maps the previous output.

    The stages are the network's own modules (not copies): training them trains ``net``.

    Raises:
        TypeError: for another network type.
    """
    if isinstance(net, UNet):
        stages, block = [], net.model
        while isinstance(block, nn.Sequential) and len(block) == 3 and isinstance(block[1], SkipConnection):
            stages.append(block[0])
            block = block[1].submodule
        return stages + [block]
    if isinstance(net, SegResNet):
        return [nn.Sequential(net.convInit, net.down_layers[0]), *net.down_layers[1:]]
    raise TypeError(f"encoder_stages supports MONAI UNet and SegResNet, got {type(net).__name__}.")


def encoder_parameter_names(net: nn.Module) -> list[str]:
    """Names (as in ``net.named_parameters()``) of the parameters of :func:`encoder_stages`: the part that masked
    latent pretraining trains. Freeze them for the frozen-encoder protocol, e.g.
    ``fine_tune_segmentation(net, ..., lr_scales=dict.fromkeys(encoder_parameter_names(net), 0.0))``.

    Raises:
        TypeError: for another network type than a MONAI ``UNet`` or ``SegResNet``.
    """
    ids = {id(p) for stage in encoder_stages(net) for p in stage.parameters()}
    return [name for name, p in net.named_parameters() if id(p) in ids]


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` ``(B, C, *S)`` over the voxels where ``mask`` ``(B, 1, *S)`` is 1 -> ``(B, C)``."""
    return (x * mask).flatten(2).sum(-1) / mask.flatten(2).sum(-1).clamp_min(1.0)


def patchify(x: torch.Tensor, factor: Sequence[int]) -> torch.Tensor:
    """Rearrange ``(B, C, *S)`` into tokens ``(B, N, C * prod(factor))``, one per ``factor`` cell (N-D pixel unshuffle).

    Token order is the row-major order of the grid ``S / factor`` (the order of the mask generators' indices).
    """
    b, c, *size = x.shape
    d = len(size)
    grid = [s // f for s, f in zip(size, factor)]
    if [g * f for g, f in zip(grid, factor)] != size:
        raise ValueError(f"spatial size {tuple(size)} is not divisible by {tuple(factor)}.")
    shape = [b, c] + [v for g, f in zip(grid, factor) for v in (g, f)]
    perm = [0] + [2 + 2 * i for i in range(d)] + [1] + [3 + 2 * i for i in range(d)]
    return x.reshape(shape).permute(perm).reshape(b, math.prod(grid), c * math.prod(factor))


class MaskedConvEncoder(nn.Module):
    """A MONAI segmentation CNN as a token encoder with the interface of :class:`~monai_jepa.networks.JEPAViT`.

    ``forward(x, indices=None) -> (tokens (B, N or K, D), pooled (B, P))``: without ``indices`` the full input is
    encoded and all ``N = prod(grid_size)`` tokens are returned; with ``indices`` ``(B, K)`` only the listed tokens are
    visible (see the module docstring) and their features are returned. ``pooled`` is, with ``pooling="deep"``, the
    mean of the deepest feature map over the visible voxels (``P = C_deep``), or, with ``pooling="tokens"``, the mean
    of the returned token features (``P = D``). A network whose deepest stage ends with instance normalisation (MONAI's
    ``UNet``) has a spatial mean that barely depends on the input, so its ``"deep"`` pooled embedding hardly varies;
    ``"tokens"`` pools the layer-normalised multi-scale tokens instead, and SIGReg on it then shapes the features a
    probe reads. So :class:`~monai_jepa.networks.MaskedLatentModel`,
    :class:`~monai_jepa.networks.JEPAPredictor`, :class:`~monai_jepa.losses.MaskedLatentLoss` and
    :class:`~monai_jepa.engines.MaskedLatentTrainer` pretrain a CNN unchanged.

    Normalisation layers see the zeros of the masked region in their statistics (their values never depend on the
    masked content; tested). With ``token_norm`` each level's token features are layer-normalised separately (no
    affine) before concatenation, so every scale weighs the same in the prediction loss and in SIGReg.

    Args:
        net: a MONAI ``UNet`` or ``SegResNet`` (built with its segmentation ``out_channels``); it is held as
            ``self.net`` and only its encoder path runs here.
        img_size: input spatial size, each divisible by the token patch size.
        patch_size: token patch size; default: the stride of the deepest level (one token per deepest voxel).
        feature_levels: encoder levels whose features make the tokens (negative: counted from the deepest); each
            level's stride must divide ``patch_size``. Default: the deepest level and the deepest level of half its
            stride (two scales, e.g. strides 8 and 4).
        token_norm: layer-normalise each level's part of the token features.
        remask: mask the input and output of every encoder convolution (False: only the network input is masked).
        pooling: ``"deep"`` (mean of the deepest feature map) or ``"tokens"`` (mean of the token features), the
            image-level embedding returned as ``pooled``.

    Example::

        >>> unet = UNet(3, 1, 3, channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=2)
        >>> enc = MaskedConvEncoder(unet, img_size=(48, 64, 48))  # grid (6, 8, 6), D = 128 + 32 * 8
        >>> model = MaskedLatentModel(enc, JEPAPredictor(enc.grid_size, enc.embed_dim, 192, depth=4, num_heads=6))
    """

    def __init__(
        self,
        net: nn.Module,
        img_size: Sequence[int] | int,
        patch_size: Sequence[int] | int | None = None,
        feature_levels: Sequence[int] | None = None,
        token_norm: bool = True,
        remask: bool = True,
        pooling: str = "deep",
    ) -> None:
        super().__init__()
        self.pooling = look_up_option(pooling, POOLING)
        self.net = net
        self._stages = encoder_stages(net)  # a plain list: the modules are registered once, under ``net``
        dims = getattr(net, "dimensions", None) or getattr(net, "spatial_dims", None)
        if dims not in (1, 2, 3):
            raise ValueError(f"could not read the spatial dimensions of {type(net).__name__}.")
        self.spatial_dims = int(dims)
        self.img_size = ensure_tuple_rep(img_size, self.spatial_dims)
        in_channels = getattr(net, "in_channels", None)
        self.in_channels = int(in_channels)
        self.level_channels, self.level_strides = self._probe_levels()
        n_levels = len(self._stages)
        if feature_levels is None:
            finer = [i for i, s in enumerate(self.level_strides) if max(s) < max(self.level_strides[-1])]
            feature_levels = [n_levels - 1] + finer[-1:]
        levels = sorted({lv % n_levels for lv in feature_levels if -n_levels <= lv < n_levels})
        if not levels or len(levels) != len(set(feature_levels)):
            raise ValueError(
                f"feature_levels must be distinct levels in [-{n_levels}, {n_levels - 1}], got {feature_levels}."
            )
        self.feature_levels = tuple(levels)
        deepest = self.level_strides[-1]
        self.patch_size = deepest if patch_size is None else ensure_tuple_rep(patch_size, self.spatial_dims)
        if any(s % p for s, p in zip(self.img_size, self.patch_size)):
            raise ValueError(f"img_size {self.img_size} must be divisible by patch_size {self.patch_size}.")
        self.factors = []
        for lv in self.feature_levels:
            stride = self.level_strides[lv]
            if any(p % s for p, s in zip(self.patch_size, stride)):
                raise ValueError(f"level {lv} has stride {stride}, which does not divide patch_size {self.patch_size}.")
            self.factors.append(tuple(p // s for p, s in zip(self.patch_size, stride)))
        self.level_dims = tuple(
            self.level_channels[lv] * math.prod(f) for lv, f in zip(self.feature_levels, self.factors)
        )
        self.embed_dim = int(sum(self.level_dims))
        self.pooled_dim = int(self.level_channels[-1]) if self.pooling == "deep" else self.embed_dim
        self.grid_size = tuple(s // p for s, p in zip(self.img_size, self.patch_size))
        self.num_tokens = math.prod(self.grid_size)
        self.token_norm = bool(token_norm)
        self.remask = bool(remask)
        self._mask: torch.Tensor | None = None
        self._resized: dict[tuple[int, ...], torch.Tensor] = {}
        for stage in self._stages:
            stage.register_forward_hook(self._mask_output)
            for m in stage.modules():
                if isinstance(m, _CONVS):
                    m.register_forward_pre_hook(self._mask_input)
                    m.register_forward_hook(self._mask_output)

    # ------------------------------------------------------------------ masking
    def _probe_levels(self) -> tuple[list[int], list[tuple[int, ...]]]:
        """Channels and strides of every encoder level, from one forward pass of a zero input."""
        was_training = self.net.training
        self.net.eval()
        try:
            with torch.no_grad():
                p = next(self.net.parameters())
                x = torch.zeros(1, self.in_channels, *self.img_size, dtype=p.dtype, device=p.device)
                channels, strides = [], []
                for stage in self._stages:
                    x = stage(x)
                    channels.append(int(x.shape[1]))
                    stride = tuple(s // t for s, t in zip(self.img_size, x.shape[2:]))
                    if tuple(t * st for t, st in zip(x.shape[2:], stride)) != self.img_size:
                        raise ValueError(
                            f"img_size {self.img_size} must be divisible by the strides of "
                            f"{type(self.net).__name__} (level {len(strides)} gives {tuple(x.shape[2:])})."
                        )
                    strides.append(stride)
        finally:
            self.net.train(was_training)
        return channels, strides

    def visible_mask(self, indices: torch.Tensor, batch_size: int) -> torch.Tensor:
        """``(B, 1, *grid_size)`` float mask, 1 at the tokens in ``indices`` ``(B, K)``."""
        idx = torch.as_tensor(indices).long()
        if idx.ndim != 2 or idx.shape[0] != batch_size:
            raise ValueError(f"indices must be (B={batch_size}, K), got {tuple(idx.shape)}.")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.num_tokens):
            raise ValueError(f"indices must lie in [0, {self.num_tokens}), got [{int(idx.min())}, {int(idx.max())}].")
        mask = torch.zeros(batch_size, self.num_tokens, device=idx.device)
        mask.scatter_(1, idx, 1.0)
        return mask.view(batch_size, 1, *self.grid_size)

    def _mask_at(self, like: torch.Tensor) -> torch.Tensor:
        size = tuple(like.shape[2:])
        if size not in self._resized:
            self._resized[size] = F.interpolate(self._mask, size=size, mode="nearest")
        return self._resized[size].to(device=like.device, dtype=like.dtype)

    def _mask_input(self, module: nn.Module, args: tuple) -> tuple | None:
        if self._mask is None or not self.remask:
            return None
        return (args[0] * self._mask_at(args[0]),) + tuple(args[1:])

    def _mask_output(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        if self._mask is None or not self.remask:
            return None
        return output * self._mask_at(output)

    @contextmanager
    def masking(self, indices: torch.Tensor | None, batch_size: int):
        """Within the block, the encoder path sees only the tokens in ``indices`` (no-op for None); yields the
        ``(B, 1, *grid)`` visible mask (or None)."""
        if indices is None:
            yield None
            return
        mask = self.visible_mask(indices, batch_size)
        self._mask, self._resized = mask, {}
        try:
            yield mask
        finally:
            self._mask, self._resized = None, {}

    # ------------------------------------------------------------------ forward
    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != self.spatial_dims + 2 or tuple(x.shape[2:]) != self.img_size or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected input (B, {self.in_channels}, {', '.join(map(str, self.img_size))}), got {tuple(x.shape)}."
            )

    def features(self, x: torch.Tensor, indices: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The feature map of every encoder level ``[(B, C_l, *S_l), ...]`` (finest first), masked by ``indices``."""
        return self._encode(x, indices)[0]

    def _encode(self, x: torch.Tensor, indices: torch.Tensor | None) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """:meth:`features`, and the visible mask at the deepest level (None without ``indices``)."""
        self._check_input(x)
        with self.masking(indices, x.shape[0]) as mask:
            if mask is not None:
                x = x * self._mask_at(x)
            feats = []
            for stage in self._stages:
                x = stage(x)
                feats.append(x)
            deep_mask = None if mask is None else self._mask_at(feats[-1])
        return feats, deep_mask

    def tokens(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """Token features ``(B, N, embed_dim)`` of the selected levels of ``feats``."""
        parts = []
        for lv, factor in zip(self.feature_levels, self.factors):
            t = patchify(feats[lv], factor)
            parts.append(F.layer_norm(t, t.shape[-1:]) if self.token_norm else t)
        return torch.cat(parts, dim=-1)

    def forward(self, x: torch.Tensor, indices: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            x: input ``(B, in_channels, *img_size)``.
            indices: optional ``(B, K)`` visible token indices (row-major on ``grid_size``).

        Returns:
            tokens ``(B, N, embed_dim)`` (``(B, K, embed_dim)`` with ``indices``) and pooled ``(B, pooled_dim)``.
        """
        feats, deep_mask = self._encode(x, indices)
        tokens, deep = self.tokens(feats), feats[-1]
        if indices is not None:
            idx = torch.as_tensor(indices, device=tokens.device).long()
            tokens = torch.gather(tokens, 1, idx.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
        if self.pooling == "tokens":
            return tokens, tokens.mean(1)
        return tokens, deep.flatten(2).mean(-1) if indices is None else masked_mean(deep, deep_mask)

    def extra_repr(self) -> str:
        return (
            f"net={type(self.net).__name__}, img_size={self.img_size}, patch_size={self.patch_size}, "
            f"grid_size={self.grid_size}, feature_levels={self.feature_levels}, embed_dim={self.embed_dim}, "
            f"pooling={self.pooling}"
        )
