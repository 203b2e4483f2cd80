# Copyright (c) monai_jepa contributors
# Licensed under the Apache License, Version 2.0; see LICENSE.
"""SIGReg forward + backward speed against a straightforward per-knot cos/sin implementation of the same statistic,
or side by side with the SIGReg of the ``lightly`` package (``pip install -e .[bench]``).

Workload: 8 views x 256 samples x 128 dims, 1024 slices, 17 knots on [-5, 5], fp32.

    python -m benchmarks.sigreg_speed                 # CPU
    python -m benchmarks.sigreg_speed --device cuda   # GPU, when one is available
    python -m benchmarks.sigreg_speed --against lightly --threads 1 2 --label "idle machine"

With ``--against lightly`` both implementations run in one process on the same inputs, in alternation (so that a
changing machine load affects both alike), at each thread count of ``--threads``, in two configurations: each with
its own defaults (monai_jepa: 17 knots on [-5, 5]; lightly: 17 knots on [0, 3]), and on the same quadrature grid
(monai_jepa with 33 knots on [-3, 3], whose non-negative half is lightly's 17 knots on [0, 3]), where the two compute
the same statistic; their values and gradients are compared there on shared directions. ``--previous REV`` adds the
``monai_jepa/losses/sigreg.py`` of git revision ``REV`` to the comparison. ``--label`` names the load condition.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import torch

from benchmarks._common import median, write_results
from monai_jepa.losses import SIGReg

ROOT = Path(__file__).resolve().parents[1]


def straightforward_sigreg(z: torch.Tensor, directions: torch.Tensor, num_knots: int = 17, t_max: float = 5.0):
    """The textbook form: every knot of the full grid, cos and sin at every (sample, slice, knot), autograd."""
    u = z @ directions  # (V, N, M)
    t = torch.linspace(-t_max, t_max, num_knots, device=z.device)
    trap = torch.full_like(t, 2 * t_max / (num_knots - 1))
    trap[0] = trap[-1] = trap[0] / 2
    window = torch.exp(-(t**2) / 2)
    x = u.unsqueeze(-1) * t  # (V, N, M, T)
    err = (torch.cos(x).mean(1) - window) ** 2 + torch.sin(x).mean(1) ** 2  # (V, M, T)
    ep = u.shape[1] * (err * window * trap).sum(-1)  # (V, M)
    return ep  # per view, per slice


def library_per_view(sigreg: SIGReg, z: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    return torch.stack([sigreg(v, directions=directions) for v in z])


def time_fn(fn, z, repeats: int, warmup: int, sync) -> list[float]:
    times = []
    for i in range(warmup + repeats):
        zz = z.detach().clone().requires_grad_(True)
        sync()
        t0 = time.perf_counter()
        fn(zz).backward()
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def load_lightly_sigreg() -> tuple[type, str]:
    """lightly's ``SIGReg`` class and how it was loaded.

    ``lightly.loss`` imports torchvision in its package ``__init__`` (for its dense losses); where no torchvision build
    matches the installed torch, the module ``lightly/loss/lejepa_loss.py`` (which needs only torch) is loaded by path.
    """
    try:
        from lightly.loss.lejepa_loss import SIGReg as LightlySIGReg

        return LightlySIGReg, "import lightly.loss.lejepa_loss"
    except ImportError as err:
        spec = importlib.util.find_spec("lightly")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("lightly is not installed: pip install -e .[bench]") from err
        path = Path(list(spec.submodule_search_locations)[0]) / "loss" / "lejepa_loss.py"
        mod_spec = importlib.util.spec_from_file_location("lightly.loss.lejepa_loss", path)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
        return module.SIGReg, f"lightly/loss/lejepa_loss.py loaded by path (import lightly.loss failed: {err})"


def load_previous_sigreg(rev: str) -> type:
    """The ``SIGReg`` class of ``monai_jepa/losses/sigreg.py`` at git revision ``rev``."""
    source = subprocess.check_output(["git", "show", f"{rev}:monai_jepa/losses/sigreg.py"], cwd=ROOT, text=True)
    module = types.ModuleType(f"sigreg_at_{rev}")
    module.__file__ = f"{rev}:monai_jepa/losses/sigreg.py"
    sys.modules[module.__name__] = module
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module.SIGReg


def quartiles(values: list[float]) -> tuple[float, float]:
    """First and third quartiles (nearest rank)."""
    s = sorted(values)
    return s[len(s) // 4], s[(3 * len(s)) // 4]


def lightly_directions(dim: int, slices: int, seed: int) -> torch.Tensor:
    """The directions lightly's SIGReg draws after ``torch.manual_seed(seed)`` (normalised Gaussian columns)."""
    torch.manual_seed(seed)
    a = torch.randn(dim, slices)
    return a.div_(a.norm(p=2, dim=0))


def compare_lightly(args: argparse.Namespace) -> None:
    """Side-by-side of monai_jepa's and lightly's SIGReg (see the module docstring)."""
    if args.device != "cpu":
        raise SystemExit("--against lightly measures the CPU (results file sigreg_vs_lightly_cpu)")
    LightlySIGReg, how = load_lightly_sigreg()
    import lightly

    gen = torch.Generator().manual_seed(0)
    z = torch.randn(args.views, args.samples, args.dim, generator=gen) * 1.2 + 0.1
    own_grid = dict(num_slices=args.slices)  # 17 knots on [-5, 5]
    lightly_grid = dict(num_slices=args.slices, num_knots=33, t_max=3.0)  # non-negative half: 17 knots on [0, 3]
    grids = {
        "own": "17 knots on [-5, 5]: 8 non-zero knots evaluated",
        "lightly's": "33 knots on [-3, 3]: the 16 non-zero knots of lightly's grid",
        "lightly default": "17 knots on [0, 3], doubled trapezoid weights: 17 knots evaluated (t = 0 included)",
    }
    previous = load_previous_sigreg(args.previous) if args.previous else None

    def implementations() -> dict[str, tuple[str, torch.nn.Module]]:
        impls = {
            "monai_jepa": ("own", SIGReg(distributed=False, **own_grid)),
            "monai_jepa, lightly's grid": ("lightly's", SIGReg(distributed=False, **lightly_grid)),
        }
        if previous is not None:
            impls[f"monai_jepa@{args.previous}"] = ("own", previous(distributed=False, **own_grid))
            impls[f"monai_jepa@{args.previous}, lightly's grid"] = (
                "lightly's",
                previous(distributed=False, **lightly_grid),
            )
        impls["lightly"] = ("lightly default", LightlySIGReg(num_vectors=args.slices))
        return impls

    # values and gradients on shared directions (lightly's draw after torch.manual_seed(123))
    d = lightly_directions(args.dim, args.slices, seed=123)
    values, grads = {}, {}
    for key, (_, module) in implementations().items():
        zz = z.clone().requires_grad_(True)
        if key == "lightly":
            torch.manual_seed(123)
            value = module(zz)
        else:
            value = module(zz, directions=d)
        value.backward()
        values[key], grads[key] = value.item(), zz.grad

    def rel(a: str, b: str) -> dict[str, float]:
        return {
            "value_rel_diff": abs(values[a] - values[b]) / abs(values[b]),
            "grad_max_rel_diff": ((grads[a] - grads[b]).abs().max() / grads[b].abs().max()).item(),
        }

    agreement = {
        "monai_jepa, lightly's grid vs lightly": rel("monai_jepa, lightly's grid", "lightly"),
        "monai_jepa (own grid) vs lightly": rel("monai_jepa", "lightly"),
    }
    if previous is not None:
        agreement[f"monai_jepa@{args.previous} vs monai_jepa"] = rel(f"monai_jepa@{args.previous}", "monai_jepa")

    timings: dict = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        load_before = os.getloadavg()
        impls = implementations()
        times: dict[str, list[float]] = {k: [] for k in impls}
        for i in range(args.warmup + args.repeats):
            for key, (_, module) in impls.items():  # in alternation, so that load changes hit every implementation
                zz = z.clone().requires_grad_(True)
                t0 = time.perf_counter()
                module(zz).backward()  # each draws its own fresh directions, as in training
                if i >= args.warmup:
                    times[key].append(time.perf_counter() - t0)
        timings[str(threads)] = {
            "median_s": {k: median(v) for k, v in times.items()},
            "quartiles_s": {k: quartiles(v) for k, v in times.items()},
            "all_s": times,
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        }

    result = {
        "label": args.label,
        "workload": {k: getattr(args, k) for k in ("views", "samples", "dim", "slices")},
        "pass": "forward + backward, fp32, median of repeats, implementations in alternation",
        "repeats": args.repeats,
        "warmup": args.warmup,
        "lightly_version": lightly.__version__,
        "lightly_loaded": how,
        "previous": args.previous,
        "grids": {k: grids[g] for k, (g, _) in implementations().items()},
        "values_on_shared_directions": values,
        "agreement": agreement,
        "timings_by_threads": timings,
    }
    rows = []
    for threads, entry in timings.items():
        med, quart = entry["median_s"], entry["quartiles_s"]
        for key, (grid, _) in implementations().items():
            q1, q3 = (q * 1e3 for q in quart[key])
            rows.append(
                f"| {threads} | {key} | {grids[grid]} | {med[key] * 1e3:.1f} | {q1:.1f} - {q3:.1f} | "
                f"{med['lightly'] / med[key]:.2f}x |"
            )
    loads = ", ".join(
        f"{e['loadavg_before'][0]:.2f} -> {e['loadavg_after'][0]:.2f} during the {t}-thread runs"
        for t, e in timings.items()
    )
    agree = "\n".join(
        f"| {name} | {a['value_rel_diff']:.2e} | {a['grad_max_rel_diff']:.2e} |" for name, a in agreement.items()
    )
    vals = ", ".join(f"{k} {v:.6f}" for k, v in values.items())
    same = agreement["monai_jepa, lightly's grid vs lightly"]
    agrees = same["value_rel_diff"] < 1e-5 and same["grad_max_rel_diff"] < 1e-5
    verdict = (
        f"On lightly's grid monai_jepa and lightly compute the same statistic: "
        f"{'they agree to fp32 rounding' if agrees else 'they DISAGREE beyond fp32 rounding'} "
        f"(value {same['value_rel_diff']:.1e}, gradient {same['grad_max_rel_diff']:.1e}). With its own grid (the "
        "paper's [-5, 5]) monai_jepa's value also holds the part of the integral over 3 < |t| <= 5, on a coarser "
        f"spacing: {agreement['monai_jepa (own grid) vs lightly']['value_rel_diff']:.1e} relative difference here."
    )
    md = f"""# SIGReg: monai_jepa vs lightly {lightly.__version__} (cpu), {args.label}

Forward + backward of SIGReg on the same input, {args.views} views x {args.samples} samples x {args.dim} dims,
{args.slices} slices, fp32, one process; the implementations run in alternation (so that a change of the machine
load hits all of them), median of {args.repeats} runs after {args.warmup} warm-up runs each. Every call draws its own
fresh directions, as in training. Load condition: **{args.label}** (1-minute load average {loads}; {os.cpu_count()}
CPUs).

| threads | implementation | knots | median (ms) | quartiles (ms) | lightly time / this (medians) |
|---|---|---|---|---|---|
{chr(10).join(rows)}

Values and gradients on shared directions (lightly's own draw after `torch.manual_seed(123)`, given to monai_jepa as
`directions`). Both statistics are the N-scaled Epps-Pulley statistic averaged over views and slices, so no rescaling
is needed; only the quadrature grids differ.

| comparison | value: relative difference | gradient: max difference / max magnitude |
|---|---|---|
{agree}

Values: {vals}.

{verdict}

lightly's SIGReg loaded by: {how}.
"""
    paths = write_results(args.name or "sigreg_vs_lightly_cpu", result, md)
    print(md)
    print("written:", *paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--slices", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--name", default=None, help="results file stem (default sigreg_speed_<device type>)")
    parser.add_argument("--against", choices=("straightforward", "lightly"), default="straightforward")
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()], help="with lightly")
    parser.add_argument("--label", default="load not stated", help="the load condition of the machine")
    parser.add_argument("--previous", default=None, help="with lightly: also time sigreg.py at this git revision")
    args = parser.parse_args()
    if args.against == "lightly":
        compare_lightly(args)
        return

    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    gen = torch.Generator().manual_seed(0)
    z = (torch.randn(args.views, args.samples, args.dim, generator=gen) * 1.2 + 0.1).to(device)
    sigreg = SIGReg(num_slices=args.slices, distributed=False)
    d = sigreg.sample_directions(args.dim).to(device)

    # values: the per-slice statistics and the per-view SIGReg (mean over slices)
    with torch.no_grad():
        ref_slices = straightforward_sigreg(z, d)
        ref_views = ref_slices.mean(-1)
        from monai_jepa.losses import epps_pulley

        ours_slices = epps_pulley(z @ d, distributed=False)
        ours_views = library_per_view(sigreg, z, d)
        ref64 = straightforward_sigreg(z.double(), d.double()).mean(-1)
    rel_views = ((ours_views - ref_views).abs() / ref_views.abs()).max().item()
    rel_slices = ((ours_slices - ref_slices).abs() / ref_slices.abs()).max().item()

    base_t = time_fn(lambda x: straightforward_sigreg(x, d).mean(), z, args.repeats, args.warmup, sync)
    ours_t = time_fn(lambda x: sigreg(x, directions=d), z, args.repeats, args.warmup, sync)
    base_med, ours_med = median(base_t), median(ours_t)
    result = {
        "workload": {k: getattr(args, k) for k in ("views", "samples", "dim", "slices")} | {"knots": 17, "t_max": 5.0},
        "device": str(device),
        "straightforward_s": base_med,
        "library_s": ours_med,
        "speedup": base_med / ours_med,
        "max_rel_diff_sigreg_per_view": rel_views,
        "max_rel_diff_per_slice": rel_slices,
        "max_rel_diff_library_vs_float64_per_view": ((ours_views.double() - ref64).abs() / ref64).max().item(),
        "max_rel_diff_straightforward_vs_float64_per_view": ((ref_views.double() - ref64).abs() / ref64).max().item(),
        "sigreg_values": ours_views.tolist(),
        "repeats": args.repeats,
        "all_times_s": {"straightforward": base_t, "library": ours_t},
    }
    md = f"""# SIGReg speed ({device.type})

Forward + backward of SIGReg, {args.views} views x {args.samples} samples x {args.dim} dims, {args.slices} slices,
17 knots on [-5, 5], fp32, median of {args.repeats} runs after {args.warmup} warm-up runs.

| implementation | median time (s) | speed-up |
|---|---|---|
| straightforward (cos/sin at every knot, autograd) | {base_med:.4f} | 1.00x |
| monai_jepa `SIGReg` | {ours_med:.4f} | {base_med / ours_med:.2f}x |

Agreement of the values: max relative difference {rel_views:.2e} on the per-view SIGReg values
(per-slice statistics: {rel_slices:.2e}; against a float64 evaluation of the per-view values:
library {result['max_rel_diff_library_vs_float64_per_view']:.2e},
straightforward fp32 {result['max_rel_diff_straightforward_vs_float64_per_view']:.2e}).
"""
    name = args.name or f"sigreg_speed_{device.type}"
    paths = write_results(name, result, md)
    print(md)
    print("written:", *paths)


if __name__ == "__main__":
    main()
