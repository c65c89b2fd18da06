"""Search-memory benchmark (issue 4): peak memory and samples/s of one search step, plain vs ours.

    python benchmarks/search_memory.py [--profiles paper cpu] [--batches 16 64] [--order second]
                                       [--device cpu|cuda] [--limit-gib 22] [--max-step-s 600]
                                       [--probe 2 4] [--threads 1] [--nets plain ours]
                                       [--cap-gib 14.5]

"plain" is the straightforward reference supernet of ``benchmarks/search_step.py`` (every
candidate evaluated, textbook ops, no checkpointing); "ours" is ``SuperNet`` as the profile's
search builds it (channels-last, shared ReLUs, and ``memory_efficient`` edge checkpointing when
the profile's ``SearchConfig.memory_efficient`` is on, as in ``paper``). One step = the
architect's alpha step (``--order``, default second: the larger peak) + the SGD weight step.

Every measurement runs in a fresh child process: peak resident memory (``VmHWM``) on CPU,
``torch.cuda.max_memory_allocated`` on CUDA, and the wall time of that single step. Before a
target batch is attempted, each configuration is run at the small ``--probe`` batches and its
peak and time are fitted linearly in the batch size. A target whose predicted peak exceeds
``--limit-gib`` is reported as "would exceed" and not attempted; one whose predicted time
exceeds ``--max-step-s`` is reported with its *extrapolated* numbers, marked ``~``.

``--cap-gib`` (CUDA only) caps what PyTorch's caching allocator may hold
(``torch.cuda.set_per_process_memory_fraction``), so a large card stands in for a smaller one:
a step that would need more fails with an out-of-memory error instead of borrowing the rest.
14.5 GiB is about what a 16 GB card (for example Colab's T4, 15 360 MiB) leaves to tensors once
the CUDA context has taken its share (an estimate, not measured on such a card). On CUDA the child also reports the allocator's peak
*reserved* memory (allocated plus its cache), the figure the cap applies to.

Last line: ``paper_b64_peak_gib: X`` (ours, measured, or extrapolated when marked so on the
line before).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from emodarts_core.config import PROFILES  # noqa: E402


def child(args: argparse.Namespace) -> None:
    import time

    from search_step import make_setup, peak_rss_gib, search_step

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    kind = "plain" if args.kind == "plain" else (
        "ours_me" if PROFILES[args.profile].search.memory_efficient else "ours")
    if kind == "ours_me" and device.type == "cpu":
        from emodarts_core.fast.memory import return_freed_blocks_to_os
        return_freed_blocks_to_os()          # as run_search does for a memory-efficient search
    net, arch, w_opt, data, scfg = make_setup(args.profile, args.batch, args.order, kind)
    net.to(device)
    data = tuple(t.to(device) for t in data)
    if device.type == "cuda":
        if args.cap_gib:
            index = torch.cuda.current_device() if device.index is None else device.index
            total = torch.cuda.get_device_properties(index).total_memory
            torch.cuda.set_per_process_memory_fraction(args.cap_gib * 1024 ** 3 / total, index)
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    search_step(net, arch, w_opt, data, scfg.w_lr)
    if device.type == "cuda":
        torch.cuda.synchronize()
        memory = {"peak_gib": torch.cuda.max_memory_allocated() / 1024 ** 3,
                  "reserved_gib": torch.cuda.max_memory_reserved() / 1024 ** 3,
                  "cap_gib": args.cap_gib}
    else:
        memory = {"peak_gib": peak_rss_gib()}
    print(json.dumps({"seconds": time.perf_counter() - t, **memory}))


def run_child(args: argparse.Namespace, profile: str, kind: str, batch: int) -> dict:
    cmd = [sys.executable, __file__, "--child", "--profile", profile, "--kind", kind,
           "--batch", str(batch), "--order", args.order, "--device", args.device,
           "--threads", str(args.threads)]
    if args.cap_gib:
        cmd += ["--cap-gib", str(args.cap_gib)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["killed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def fit(points: list[tuple[int, float]], batch: int) -> float:
    """Linear fit through the probe points, evaluated at ``batch``."""
    (b0, y0), (b1, y1) = points[0], points[-1]
    slope = (y1 - y0) / (b1 - b0) if b1 != b0 else 0.0
    return y0 + slope * (batch - b0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profiles", nargs="+", default=["paper", "cpu"])
    ap.add_argument("--batches", nargs="+", type=int, default=[16, 64])
    ap.add_argument("--order", default="second", choices=["first", "second"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--limit-gib", type=float, default=22.0)
    ap.add_argument("--max-step-s", type=float, default=600.0)
    ap.add_argument("--probe", nargs=2, type=int, default=[2, 4])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--nets", nargs="+", default=["plain", "ours"], choices=["plain", "ours"],
                    help="which supernets to measure (default both)")
    ap.add_argument("--cap-gib", type=float, default=None,
                    help="CUDA only: cap PyTorch's allocator at this many GiB (stand-in for a smaller card)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--profile", default="cpu", help=argparse.SUPPRESS)
    ap.add_argument("--kind", default="ours", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.cap_gib is not None and not args.device.startswith("cuda"):
        ap.error("--cap-gib applies to --device cuda only")
    if args.child:
        return child(args)
    unit = "max allocated GiB" if args.device.startswith("cuda") else "peak RSS GiB"
    if args.cap_gib:
        unit += f", allocator capped at {args.cap_gib:g} GiB"
    print(f"{args.order}-order search step, device {args.device}, {args.threads} torch thread(s); "
          f"{unit}; '~' = extrapolated from batches {args.probe}")
    print(f"{'profile':<8}{'net':<7}{'batch':>6}{'peak GiB':>12}{'s/step':>10}{'samples/s':>11}")
    paper_b64 = None
    for profile in args.profiles:
        for kind in args.nets:
            probes = {b: run_child(args, profile, kind, b) for b in args.probe}
            bad = [r["error"] for r in probes.values() if "error" in r]
            if bad:
                print(f"{profile:<8}{kind:<7}{'probe':>6}  failed: {bad[0]}")
                continue
            mem = [(b, r["peak_gib"]) for b, r in probes.items()]
            sec = [(b, r["seconds"]) for b, r in probes.items()]
            for b, r in probes.items():
                print(f"{profile:<8}{kind:<7}{b:>6}{r['peak_gib']:>12.2f}{r['seconds']:>10.1f}"
                      f"{b / r['seconds']:>11.2f}", flush=True)
            for batch in args.batches:
                # time: never below proportional to the larger probe (noisy probes can
                # give a negative slope on a shared machine)
                est_mem = fit(mem, batch)
                est_sec = max(fit(sec, batch), sec[-1][1] * batch / sec[-1][0])
                if est_mem > args.limit_gib:
                    print(f"{profile:<8}{kind:<7}{batch:>6}  would exceed {args.limit_gib:g} GiB "
                          f"(~{est_mem:.1f} GiB predicted): not attempted", flush=True)
                    row = ("~", est_mem)
                elif est_sec > args.max_step_s:
                    print(f"{profile:<8}{kind:<7}{batch:>6}{'~%.2f' % est_mem:>12}{'~%.0f' % est_sec:>10}"
                          f"{'~%.2f' % (batch / est_sec):>11}", flush=True)
                    row = ("~", est_mem)
                else:
                    r = run_child(args, profile, kind, batch)
                    if "error" in r:
                        print(f"{profile:<8}{kind:<7}{batch:>6}  failed: {r['error']}")
                        continue
                    print(f"{profile:<8}{kind:<7}{batch:>6}{r['peak_gib']:>12.2f}{r['seconds']:>10.1f}"
                          f"{batch / r['seconds']:>11.2f}", flush=True)
                    row = ("", r["peak_gib"])
                if profile == "paper" and kind == "ours" and batch == 64:
                    paper_b64 = row
    if paper_b64 is not None:
        if paper_b64[0]:
            print("paper_b64_peak_gib below is extrapolated (linear in batch), not measured")
        print(f"paper_b64_peak_gib: {paper_b64[1]:.2f}")


if __name__ == "__main__":
    main()
