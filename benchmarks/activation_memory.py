"""Where a search step's memory goes (issue 4): activations torch keeps, against the process's RSS.

    python benchmarks/activation_memory.py [--profile paper] [--batches 2 8] [--plain]

For one forward + backward pass of the supernet (training mode) it prints, per batch size:

- ``saved``: the bytes autograd keeps for the backward pass after the forward (every tensor saved
  by an op, counted once per storage, parameters excluded, via
  ``torch.autograd.graph.saved_tensors_hooks``), split by
  the top-level part of the net that saved it (stem, each CNN cell, each SeqNN cell, head);
- ``tracked peak``: the peak of the bytes allocated through torch's CPU allocator during the pass,
  above what was allocated before it (from ``torch.profiler``'s memory events; the weight
  gradients created by the backward pass are part of it);
- ``rss``: the process's resident peak (``VmHWM``), which also counts what glibc keeps after a
  free and every library's own buffers.

The gap between "tracked peak" and "rss" is memory nobody uses that the process still holds;
``--mallopt`` applies :func:`emodarts_core.fast.memory.return_freed_blocks_to_os` first, as a
memory-efficient search does. Each batch runs in a fresh child process.
"""
from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search_step import peak_rss_gib  # noqa: E402  (same folder)

from emodarts_core.config import PROFILES  # noqa: E402
from emodarts_core.nas.supernet import SuperNet  # noqa: E402


def _part(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] in ("cells", "seq_cells") else (parts[0] or "net")


def child(args: argparse.Namespace) -> dict:
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(1)
    if args.mallopt:
        from emodarts_core.fast.memory import return_freed_blocks_to_os
        return_freed_blocks_to_os()
    p = PROFILES[args.profile]
    torch.manual_seed(0)
    net = SuperNet(p.space, 4, p.features.shape, memory_efficient=not args.plain).train()
    x = torch.randn(args.batch, 1, *p.features.shape)
    y = torch.randint(0, 4, (args.batch,))

    stack: list[str] = []
    for name, module in net.named_modules():
        module.register_forward_pre_hook(lambda m, i, name=name: (stack.append(name), None)[1])
        module.register_forward_hook(lambda m, i, o: (stack.pop(), None)[1])
    seen: set[int] = {q.untyped_storage().data_ptr() for q in net.parameters()}   # not activations
    saved: collections.Counter = collections.Counter()

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            saved[_part(stack[-1]) if stack else "net"] += storage.nbytes()
        return t

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = net.loss(x, y)
        loss.backward()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]")
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return {"batch": args.batch, "saved": dict(saved), "tracked_peak": peak,
            "rss": peak_rss_gib() * 1024 ** 3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="paper", choices=sorted(PROFILES))
    ap.add_argument("--batches", nargs="+", type=int, default=[2, 8])
    ap.add_argument("--plain", action="store_true", help="no edge checkpointing")
    ap.add_argument("--mallopt", action="store_true", help="return freed blocks to the OS first")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    mib = 2 ** 20
    print(f"profile {args.profile}, {'plain' if args.plain else 'memory_efficient'} supernet, "
          f"mallopt {'on' if args.mallopt else 'off'}, one forward + backward, 1 thread")
    print(f"{'batch':>5} {'saved MiB':>10} {'per sample':>10} {'tracked peak MiB':>17} "
          f"{'rss MiB':>9}  largest parts (saved MiB)")
    for batch in args.batches:
        cmd = [sys.executable, __file__, "--child", "--batch", str(batch), "--profile", args.profile]
        cmd += ["--plain"] * args.plain + ["--mallopt"] * args.mallopt
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{batch:>5} failed: {(out.stderr.strip().splitlines() or ['killed'])[-1]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        total = sum(r["saved"].values())
        parts = ", ".join(f"{k} {v / mib:.0f}" for k, v in
                          sorted(r["saved"].items(), key=lambda kv: -kv[1])[:4])
        print(f"{batch:>5} {total / mib:>10.1f} {total / batch / mib:>10.1f} "
              f"{r['tracked_peak'] / mib:>17.0f} {r['rss'] / mib:>9.0f}  {parts}")


if __name__ == "__main__":
    main()
