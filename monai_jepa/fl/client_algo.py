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
"""MONAI FL ``ClientAlgo`` of masked latent prediction: local steps of the library's trainer, weights exchanged as
MONAI ``ExchangeObject`` s, self-supervised metrics of given weights on the site's held-out images."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from monai.bundle import ConfigParser
from monai.fl.client import ClientAlgo
from monai.fl.client.monai_algo import compute_weight_diff, convert_global_weights
from monai.fl.utils.constants import ExtraItems, FlStatistics, WeightType
from monai.fl.utils.exchange_object import ExchangeObject
from monai.networks.utils import copy_model_state

from monai_jepa.engines.trainer import plain_tensor
from monai_jepa.utils.embedding import effective_rank, embedding_std

__all__ = ["MaskedLatentAlgo", "masked_latent_metrics"]


def _mask_pairs(mask_fns: Sequence[Any], batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    pairs: list = []
    for fn in mask_fns:
        out = fn(batch_size)
        pairs.extend(out if isinstance(out, list) else [out])
    return pairs


@torch.no_grad()
def masked_latent_metrics(
    network: torch.nn.Module,
    loss_function: Any,
    mask_fns: Sequence[Any],
    data: Iterable,
    device: str | torch.device = "cpu",
    image_key: str = "image",
    seed: int = 0,
    max_tokens: int = 4096,
) -> dict[str, float]:
    """Self-supervised metrics of a masked-latent model on ``data``, with masks and SIGReg directions fixed by ``seed``.

    Every batch is encoded once without mask (the pooled embeddings ``(B, D)``) and once per mask, as in
    :class:`~monai_jepa.engines.MaskedLatentTrainer`, without gradient and in float32; the objective's terms are then
    computed once per mask on all the images together (the prediction error over every target token, SIGReg of the
    pooled context embeddings of all images and of all target tokens) and averaged over the masks. The mask
    functions and the loss are copied (their random states, and SIGReg's step, are those of ``seed`` / step 0), so
    the metrics of two models on the same data are comparable and the caller's objects are untouched.

    Args:
        network: a :class:`~monai_jepa.networks.MaskedLatentModel` (``network.encoder(images) -> (tokens, pooled)``).
        loss_function: :class:`~monai_jepa.losses.MaskedLatentLoss` (``compute_terms`` and ``sigreg``).
        mask_fns: the mask functions of the trainer (``fn(batch_size) -> (context_idx, target_idx)`` or a list).
        data: iterable of batches, dicts with ``image_key`` ``(B, C, *S)``.
        device: where to compute.
        image_key: batch key of the images.
        seed: seed of the masks (and of the token sample).
        max_tokens: the full-image tokens of all images are subsampled to this many (seeded) for their effective rank.

    Returns:
        ``{"loss", "pred", "sigreg"}``: the training objective's terms on the whole of ``data``;
        ``"sigreg_pooled"``: SIGReg of all the pooled embeddings together; ``"effective_rank"`` and
        ``"embedding_std"`` of the pooled embeddings; ``"effective_rank_tokens"`` of the full-image token embeddings
        (``max_tokens`` of them); ``"num_images"``.

    Raises:
        ValueError: ``data`` holds fewer than 2 images.
    """
    fns = [copy.deepcopy(fn) for fn in mask_fns]
    for fn in fns:
        if callable(getattr(fn, "set_random_state", None)):
            fn.set_random_state(seed)
        elif isinstance(getattr(fn, "generator", None), torch.Generator):
            fn.generator.manual_seed(seed)
    loss = copy.deepcopy(loss_function)
    step = getattr(getattr(loss, "sigreg", None), "step", None)
    if isinstance(step, torch.Tensor):
        step.zero_()
    was_training = network.training
    network.eval()
    per_mask: list[tuple[list, list, list]] = []  # mask j -> (predictions, targets, pooled context embeddings)
    pooled_all, tokens_all = [], []
    try:
        for batch in data:
            images = plain_tensor(batch[image_key]).to(device).float()
            pairs = _mask_pairs(fns, images.shape[0])
            contexts = [torch.as_tensor(c).to(device) for c, _ in pairs]
            targets = [torch.as_tensor(t).to(device) for _, t in pairs]
            for j, (pred, tgt, ctx) in enumerate(network(images, contexts, targets)):
                if j == len(per_mask):
                    per_mask.append(([], [], []))
                for store, value in zip(per_mask[j], (pred, tgt, ctx)):
                    store.append(value.float().flatten(0, -2) if value.ndim == 3 else value.float())
            tokens, pooled = network.encoder(images)
            pooled_all.append(pooled.float())
            tokens_all.append(tokens.float().flatten(0, 1).cpu())
    finally:
        network.train(was_training)
    n = sum(p.shape[0] for p in pooled_all)
    if n < 2:
        raise ValueError(f"masked_latent_metrics needs at least 2 images in `data`, got {n}.")
    terms = []
    for preds, tgts, ctxs in per_mask:  # every token of every image at once: SIGReg sees the whole set
        pred, tgt = torch.cat(preds)[None], torch.cat(tgts)[None]
        terms.append(loss.compute_terms(pred, tgt, [torch.cat(ctxs), tgt[0]]))
    metrics = {k: float(torch.stack([torch.as_tensor(t[k]) for t in terms]).mean()) for k in ("loss", "pred", "sigreg")}
    pooled = torch.cat(pooled_all)
    sigreg = getattr(loss, "sigreg", None)
    metrics["sigreg_pooled"] = float(sigreg(pooled)) if callable(sigreg) else float("nan")
    metrics["effective_rank"] = effective_rank(pooled.cpu())
    metrics["embedding_std"] = embedding_std(pooled.cpu())
    tokens = torch.cat(tokens_all)
    pick = torch.randperm(tokens.shape[0], generator=torch.Generator().manual_seed(seed))[:max_tokens]
    metrics["effective_rank_tokens"] = effective_rank(tokens[pick])
    metrics["num_images"] = float(n)
    return metrics


class MaskedLatentAlgo(ClientAlgo):
    """MONAI FL client algorithm of masked latent pretraining, on a :class:`~monai_jepa.engines.MaskedLatentTrainer`.

    The federated system calls :py:meth:`train` with the global weights (an ``ExchangeObject`` of
    ``WeightType.WEIGHTS``): they are copied into the trainer's network and the trainer runs ``local_epochs`` more
    epochs (give the trainer ``epoch_length`` = the local steps of a round). The trainer object, its optimizer, the
    learning-rate schedule and SIGReg's direction counter live on across rounds, so a round continues the local
    schedule where the previous one stopped. :py:meth:`get_weights` returns the network's state (encoder and
    predictor) as ``WeightType.WEIGHTS``, or the difference to the last global weights (``WEIGHT_DIFF``) with
    ``send_weight_diff``; its statistics hold the number of iterations of the round. :py:meth:`evaluate` scores given
    weights on the site's held-out batches with :func:`masked_latent_metrics` (the local model is not changed).

    For federated systems that do not keep the client object between rounds (e.g. Flower's simulation),
    :py:meth:`state_dict` / :py:meth:`load_state_dict` save and restore the local state (trainer, optimizer, loss
    and the ``save_dict`` objects such as the learning-rate scheduler).

    Args:
        trainer: the site's :class:`~monai_jepa.engines.MaskedLatentTrainer`.
        eval_data: the site's held-out batches for :py:meth:`evaluate` (None: ``evaluate`` raises).
        save_dict: other stateful objects of the local training (``{"lr_scheduler": scheduler}``), kept by
            :py:meth:`state_dict`.
        local_epochs: trainer epochs per round.
        send_weight_diff: :py:meth:`get_weights` returns weight differences instead of weights.
        eval_seed: seed of the masks of :py:meth:`evaluate`.

    Example::

        algo = MaskedLatentAlgo.from_bundle(
            ["bundles/brats_vjepa/configs/train.json", "bundles/brats_vjepa/configs/federated/client.json"],
            overrides={"datalist": "outputs/datalist.json", "num_sites": 3, "site_index": 0},
        )
        algo.initialize({ExtraItems.CLIENT_NAME: "site_0"})
        algo.train(ExchangeObject(weights=global_state, weight_type=WeightType.WEIGHTS))
        update = algo.get_weights()  # ExchangeObject(weights=..., weight_type=WeightType.WEIGHTS, statistics=...)
    """

    def __init__(
        self,
        trainer: Any,
        eval_data: Iterable | None = None,
        save_dict: Mapping[str, Any] | None = None,
        local_epochs: int = 1,
        send_weight_diff: bool = False,
        eval_seed: int = 0,
    ) -> None:
        if not callable(getattr(trainer, "run", None)) or not hasattr(trainer, "network"):
            raise ValueError(f"trainer must be a MaskedLatentTrainer, got {type(trainer).__name__}.")
        if int(local_epochs) != local_epochs or local_epochs < 1:
            raise ValueError(f"local_epochs must be a positive integer, got {local_epochs!r}.")
        bad = [k for k, v in (save_dict or {}).items() if not callable(getattr(v, "state_dict", None))]
        if bad:
            raise ValueError(f"save_dict entries {bad} have no state_dict().")
        self.trainer = trainer
        self.eval_data = eval_data
        self.save_dict = dict(save_dict or {})
        self.local_epochs = int(local_epochs)
        self.send_weight_diff = bool(send_weight_diff)
        self.eval_seed = int(eval_seed)
        self.client_name = "site"
        self.global_weights: dict[str, torch.Tensor] | None = None
        self.iteration_at_round_start = int(trainer.state.iteration)

    @classmethod
    def from_bundle(
        cls,
        config_file: str | os.PathLike | Sequence[str | os.PathLike],
        overrides: Mapping[str, Any] | None = None,
        trainer_key: str = "train#trainer",
        eval_data_key: str | None = "federated#eval_dataloader",
        save_dict_keys: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> MaskedLatentAlgo:
        """Build the algorithm from bundle config files (later files and ``overrides`` win, ``#`` ids allowed).

        Args:
            config_file: the config file(s), e.g. ``train.json`` and ``federated/client.json``.
            overrides: config ids and values set after reading the files.
            trainer_key: config id of the trainer.
            eval_data_key: config id of the held-out batches (None or absent: no evaluation data).
            save_dict_keys: name -> config id of other stateful objects (default ``{"lr_scheduler":
                "lr_scheduler"}``, when the config has it).
            kwargs: the other arguments of the constructor (``local_epochs``, ``send_weight_diff``, ``eval_seed``).

        Raises:
            KeyError: a config without ``trainer_key``.
        """
        parser = ConfigParser()
        parser.read_config(
            [str(f) for f in ([config_file] if isinstance(config_file, (str, os.PathLike)) else config_file)]
        )
        for key, value in (overrides or {}).items():
            parser[key] = value
        if trainer_key not in parser:
            raise KeyError(f"the config has no '{trainer_key}' (the trainer of the masked latent pretraining).")
        if "initialize" in parser:  # e.g. set_determinism(seed), before the network is built
            parser.get_parsed_content("initialize")
        trainer = parser.get_parsed_content(trainer_key)
        eval_data = parser.get_parsed_content(eval_data_key) if eval_data_key and eval_data_key in parser else None
        keys = {"lr_scheduler": "lr_scheduler"} if save_dict_keys is None else dict(save_dict_keys)
        save_dict = {name: parser.get_parsed_content(key) for name, key in keys.items() if key in parser}
        return cls(trainer, eval_data=eval_data, save_dict=save_dict, **kwargs)

    # ------------------------------------------------------------------ ClientAlgo
    def initialize(self, extra: dict | None = None) -> None:
        """Record the client name (``extra[ExtraItems.CLIENT_NAME]``)."""
        self.client_name = str((extra or {}).get(ExtraItems.CLIENT_NAME, self.client_name))

    def _load(self, data: ExchangeObject, network: torch.nn.Module) -> dict[str, torch.Tensor]:
        if not isinstance(data, ExchangeObject) or not data.is_valid_weights():
            raise ValueError(
                f"{self.client_name}: expected an ExchangeObject with weights and a weight_type, got {data!r}."
            )
        if data.weight_type != WeightType.WEIGHTS:
            raise ValueError(f"{self.client_name}: the global model must be sent as {WeightType.WEIGHTS}.")
        local = {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}
        converted, n = convert_global_weights(global_weights=data.weights, local_var_dict=dict(local))
        if n != len(local):
            missing = sorted(set(local) - set(data.weights))[:5]
            raise ValueError(f"{self.client_name}: the global weights lack {len(local) - n} entries, e.g. {missing}.")
        copy_model_state(src=converted, dst=network)
        return {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}

    def train(self, data: ExchangeObject, extra: dict | None = None) -> None:
        """Load the global weights ``data`` and train ``local_epochs`` more epochs on the local data."""
        self.global_weights = self._load(data, self.trainer.network)
        self.iteration_at_round_start = int(self.trainer.state.iteration)
        self.trainer.state.max_epochs = int(self.trainer.state.epoch) + self.local_epochs
        self.trainer.run()

    def get_weights(self, extra: dict | None = None) -> ExchangeObject:
        """The network's weights (or, with ``send_weight_diff``, their difference to the last global weights) on
        the CPU, with the round's statistics (number of iterations, last training output)."""
        weights = {k: v.detach().cpu().clone() for k, v in self.trainer.network.state_dict().items()}
        weight_type = WeightType.WEIGHTS
        if self.send_weight_diff:
            weights = compute_weight_diff(global_weights=self.global_weights, local_var_dict=weights)
            weight_type = WeightType.WEIGHT_DIFF
        stats: dict[str, Any] = {
            FlStatistics.NUM_EXECUTED_ITERATIONS: int(self.trainer.state.iteration) - self.iteration_at_round_start
        }
        output = self.trainer.state.output
        if isinstance(output, Mapping):
            stats.update({k: float(v) for k, v in output.items() if isinstance(v, (int, float))})
        return ExchangeObject(weights=weights, weight_type=weight_type, statistics=stats)

    def evaluate(self, data: ExchangeObject, extra: dict | None = None) -> ExchangeObject:
        """:func:`masked_latent_metrics` of the weights ``data`` on the held-out batches (on a copy of the network)."""
        if self.eval_data is None:
            raise ValueError(f"{self.client_name}: evaluate() needs eval_data (the site's held-out batches).")
        network = copy.deepcopy(self.trainer.network)
        self._load(data, network)
        metrics = masked_latent_metrics(
            network, self.trainer.loss_function, self.trainer.mask_fns, self.eval_data, self.trainer.state.device,
            self.trainer.image_key, self.eval_seed,
        )  # fmt: skip
        return ExchangeObject(metrics=metrics)

    def abort(self, extra: dict | None = None) -> None:
        """Stop the local training at the end of the current iteration."""
        self.trainer.terminate()

    def finalize(self, extra: dict | None = None) -> None:
        """Stop the local training."""
        self.trainer.terminate()

    # ------------------------------------------------------------------ local state
    def state_dict(self) -> dict[str, Any]:
        """The local state that a round leaves behind: trainer, optimizer, loss and ``save_dict`` objects (a copy: the
        state of the live objects does not change it)."""
        state = {"trainer": self.trainer.state_dict(), "optimizer": self.trainer.optimizer.state_dict()}
        if isinstance(self.trainer.loss_function, torch.nn.Module):
            state["loss"] = self.trainer.loss_function.state_dict()
        state.update({name: obj.state_dict() for name, obj in self.save_dict.items()})
        return copy.deepcopy(state)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :py:meth:`state_dict` (the network's weights come with the next :py:meth:`train`)."""
        missing = [k for k in ("trainer", "optimizer", *self.save_dict) if k not in state]
        if missing:
            raise KeyError(f"{self.client_name}: the local state lacks {missing}.")
        self.trainer.load_state_dict(state["trainer"])
        self.trainer.optimizer.load_state_dict(state["optimizer"])
        if "loss" in state and isinstance(self.trainer.loss_function, torch.nn.Module):
            self.trainer.loss_function.load_state_dict(state["loss"])
        for name, obj in self.save_dict.items():
            obj.load_state_dict(state[name])
        self.iteration_at_round_start = int(self.trainer.state.iteration)
