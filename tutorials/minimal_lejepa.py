# Copyright (c) monai_jepa contributors
# Licensed under the Apache License, Version 2.0; see LICENSE.
"""Minimal LeJEPA with monai_jepa: self-supervised pretraining on generated images, then a linear probe.

    python tutorials/minimal_lejepa.py [--minutes 1.0]

LeJEPA in three lines: embed several views of each image, pull every view towards the centre of the global views,
and keep the embedding an isotropic Gaussian with SIGReg (no teacher, no stop-gradient, one hyper-parameter lambda).
"""

import argparse
import time

import torch
import torch.nn.functional as F
from monai.metrics import compute_roc_auc

from monai_jepa.data import make_demo_images
from monai_jepa.engines import warmup_cosine
from monai_jepa.losses import LeJEPALoss
from monai_jepa.networks import build_lejepa_model
from monai_jepa.transforms import BatchMultiView
from monai_jepa.utils.embedding import effective_rank

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--minutes", type=float, default=1.0, help="pretraining wall-clock budget")
parser.add_argument("--size", type=int, default=48)
parser.add_argument("--batch", type=int, default=64)
args = parser.parse_args()
torch.manual_seed(0)

# 1. unlabeled images (labels are only used by the probe at the end)
images, labels = make_demo_images(1400, size=args.size, seed=0)
x_train, y_train, x_test, y_test = images[:1000], labels[:1000], images[1000:], labels[1000:]
x_train, x_test = torch.from_numpy(x_train), torch.from_numpy(x_test)

# 2. encoder + projector, LeJEPA loss, views: 2 global + 4 local crops per image
model = build_lejepa_model("resnet18", spatial_dims=2, in_channels=1, proj_hidden_dim=512, proj_out_dim=64)
model = model.to(memory_format=torch.channels_last)  # 3x faster convolutions on CPU
random_init = build_lejepa_model("resnet18", spatial_dims=2, in_channels=1, proj_hidden_dim=512, proj_out_dim=64)
random_init.load_state_dict(model.state_dict())
loss_fn = LeJEPALoss(lamb=0.05, num_slices=256)
views = BatchMultiView(num_global=2, num_local=4, seed=0)
opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=5e-4)
sched = warmup_cosine(opt, warmup_steps=10, total_steps=max(20, int(args.minutes * 150)))  # ~0.4 s per step on 2 cores


def embed(net, x):  # (N, 1, H, W) -> (N, embed_dim)
    net.eval()
    with torch.no_grad():
        return torch.cat([net.embed(b.contiguous(memory_format=torch.channels_last)) for b in x.split(256)])


# 3. pretraining: the whole LeJEPA step
start, step = time.perf_counter(), 0
while time.perf_counter() - start < args.minutes * 60:
    model.train()
    batch = x_train[torch.randint(len(x_train), (args.batch,))]
    g, loc = views(batch)  # (2, B, 1, H, W), (4, B, 1, h, w)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 on CPUs with AMX / AVX512-BF16; loss stays fp32
        z_g = model(g.flatten(0, 1).contiguous(memory_format=torch.channels_last)).view(2, args.batch, -1)
        z_l = model(loc.flatten(0, 1).contiguous(memory_format=torch.channels_last)).view(4, args.batch, -1)
    terms = loss_fn.compute_terms(z_g, z_l)
    opt.zero_grad()
    terms["loss"].backward()
    opt.step()
    sched.step()
    if step % 20 == 0:
        rank = effective_rank(z_g[0].detach().float())
        print(
            f"step {step:4d}  loss {terms['loss']:.3f}  pred {terms['pred']:.3f}  sigreg {terms['sigreg']:.3f}  "
            f"eff.rank {rank:.1f}/64  {time.perf_counter() - start:.0f}s"
        )
    step += 1


# 4. linear probe on frozen features: pretrained vs the same network at its random initialisation
def linear_probe_auc(net) -> float:
    f_tr, f_te = embed(net, x_train), embed(net, x_test)
    mu, sd = f_tr.mean(0), f_tr.std(0) + 1e-6
    f_tr, f_te = (f_tr - mu) / sd, (f_te - mu) / sd
    head = torch.nn.Linear(f_tr.shape[1], 2)
    lbfgs = torch.optim.LBFGS(head.parameters(), max_iter=200)
    y = torch.from_numpy(y_train)

    def closure():
        lbfgs.zero_grad()
        loss = F.cross_entropy(head(f_tr), y) + 1e-3 * head.weight.square().sum()
        loss.backward()
        return loss

    lbfgs.step(closure)
    prob = head(f_te).softmax(1)[:, 1].detach()
    return float(compute_roc_auc(prob, torch.from_numpy(y_test)))


print(f"pretrained {step} steps in {time.perf_counter() - start:.0f}s")
print(f"linear-probe test AUC: LeJEPA {linear_probe_auc(model):.3f} | random init {linear_probe_auc(random_init):.3f}")
