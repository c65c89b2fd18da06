"""Search-step benchmark (issue 3): our supernet against a straightforward reference supernet.

    python benchmarks/search_step.py [--profile cpu] [--batch 32] [--repeats 3] [--threads 1]

The reference is the supernet as most DARTS code writes it, defined plainly below
(:func:`plain_reference`): every mixed op evaluates *every* candidate, ``none`` included, each
op runs its textbook form (its own ReLU, strided and dilated convolutions as such, PyTorch's
pooling) in the default memory format, and the edge output is ``sum_o w_o * o(x)``. It shares
our supernet's parameters (a deep copy), so both compute the same function of the same numbers.

Before any timing, one forward + backward of both on the same batch is compared: loss, logits
and every weight and alpha gradient must agree (``allclose``, rtol 1e-4, atol 1e-5). The check
runs with the cells' dropout off: in the channels-last layout the same seed yields the same
number of Bernoulli draws but puts them on other elements, so masks are equal in law only. Then one
search step as ``run_search`` takes it (architect step on the alpha batch, then the SGD weight
step) is timed, first order and second order, for each net: ``--repeats`` interleaved repeats,
the fastest kept (the machine is shared). Peak memory is the resident-set peak of a fresh child
process per configuration (``VmHWM``, see :func:`peak_rss_gib`), so the runs do not pollute
each other.

``--jobs 2`` runs each row as two such processes at once (with ``--threads 1``: one search per
core, the way this project runs its batches on a 2-core machine) and reports their summed
samples per second; ``s/step`` is then the slower process's step.

``--threads T`` with ``T > 1`` gives each net the ``T`` cores the way it uses them best: the
reference through PyTorch's intra-op threads, ours (the row ``ours``) through ``T`` branch threads
with one intra-op thread each (:mod:`emodarts_core.fast.branches`: a search node's convolutional
candidates are branches that the threads take in turn, forward and backward; intra-op threads on top of them
would oversubscribe the cores). ``--ours-threads intra-op`` gives ours intra-op threads instead,
for comparison; the memory-efficient row (checkpointed edges, no branches) always uses intra-op
threads.

``--allocator keep`` (the default) makes glibc keep freed blocks for reuse
(:func:`emodarts_core.fast.memory.keep_freed_blocks`, as a search with branch threads does) in the
processes of *both* nets, so that the comparison is of the supernets, not of allocator settings;
``--allocator default`` leaves glibc's defaults (the memory-efficient row always does).

``--rounds R`` runs the whole table ``R`` times in turn, prints each round and the per-round
speed-ups, and then each row's best round: on a shared machine a slow spell then cannot fall on
one net's rows only.

Last line: ``speedup: X``, ours over the reference in samples/s of the second-order step.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emodarts_core.config import PROFILES, override  # noqa: E402
from emodarts_core.fast.branches import set_branch_threads  # noqa: E402
from emodarts_core.fast.memory import keep_freed_blocks  # noqa: E402
from emodarts_core.nas.cnn_ops import DilConv, FactorizedReduce, PoolBN, SepConv, Zero  # noqa: E402
from emodarts_core.nas.mixed import MixedOp  # noqa: E402
from emodarts_core.nas.seq_ops import AttentiveRecurrent, Recurrent  # noqa: E402
from emodarts_core.nas.supernet import SuperNet  # noqa: E402
from emodarts_core.search.architect import Architect  # noqa: E402


# ---------------------------------------------------------------------------------------------
# The reference: plain ops, every candidate evaluated, default memory format, no checkpointing.
def plain_op(op: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Evaluate a CNN/sequence op in its textbook form (no shared ReLU, no rewrites, each
    recurrent stack run by its own ``nn.LSTM`` / ``nn.RNN`` module)."""
    if isinstance(op, DilConv):
        return op.op(x)                                  # ReLU, (dilated, strided) dw conv, 1x1, BN
    if isinstance(op, SepConv):
        return op.op[1].op(op.op[0].op(x))
    if isinstance(op, PoolBN):
        return op.bn(op.pool(x))
    if isinstance(op, FactorizedReduce):
        r = F.relu(x)
        shifted = F.pad(r, (0, 1, 0, 1))[:, :, 1:, 1:]
        return op.bn(torch.cat([op.conv1(r), op.conv2(shifted)], dim=1))
    if isinstance(op, (Recurrent, AttentiveRecurrent)):
        return op.finish(op.rnn(x)[0])                   # PyTorch's own recurrent module
    return op(x)                                         # Identity, Zero


def _strided(op: nn.Module) -> bool:
    """Whether a CNN op halves its input (a reduction edge)."""
    if isinstance(op, FactorizedReduce):
        return True
    return any(getattr(m, "stride", None) in (2, (2, 2)) for m in op.modules())


class PlainMixed(nn.Module):
    """``sum_o w_o * o(x)`` over every primitive, ``none`` (a zero tensor) included."""

    def __init__(self, mixed: nn.Module) -> None:
        super().__init__()
        built = dict(zip(mixed.indices, mixed.ops))
        stride = 2 if isinstance(mixed, MixedOp) and any(_strided(op) for op in mixed.ops) else 1
        self.all_ops = nn.ModuleList(built[i] if i in built else Zero(stride)
                                     for i in range(len(mixed.primitives)))

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return sum(w * plain_op(op, x) for w, op in zip(weights, self.all_ops))


class PlainPre(nn.Module):
    def __init__(self, pre: nn.Module) -> None:
        super().__init__()
        self.pre = pre

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return plain_op(self.pre, x) if isinstance(self.pre, FactorizedReduce) else self.pre(x)


def plain_reference(net: SuperNet) -> SuperNet:
    """A deep copy of ``net`` whose edges are :class:`PlainMixed` (same parameters)."""
    ref = copy.deepcopy(net)
    ref.channels_last = False
    ref.memory_efficient = False
    for cell in list(ref.cells) + list(ref.seq_cells):
        cell.edges = nn.ModuleList(PlainMixed(e) for e in cell.edges)
        cell.branch_nodes = False                # edge by edge, each edge summing its candidates
    for cell in ref.cells:
        cell.pre0 = PlainPre(cell.pre0)
        cell.share_sources = False               # every edge computes all its candidates itself
    return ref


# ---------------------------------------------------------------------------------------------
def search_step(net: SuperNet, architect: Architect, w_opt: torch.optim.SGD, batch, lr: float,
                grad_clip: float = 5.0) -> float:
    """One step of ``run_search``: the architect's alpha step, then the clipped SGD weight step."""
    xw, yw, xa, ya = batch
    architect.step(xw, yw, xa, ya, lr, w_opt)
    loss = F.cross_entropy(net(xw), yw)
    w_opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(net.weights(), grad_clip)
    w_opt.step()
    w_opt.zero_grad(set_to_none=True)
    return float(loss.detach())


def make_setup(profile: str, batch: int, order: str, kind: str, seed: int = 0):
    """Net (``kind``: "ours", "ours_me" (memory-efficient) or "plain"), architect, optimiser, data."""
    p = PROFILES[profile]
    torch.manual_seed(seed)
    net = SuperNet(p.space, 4, p.features.shape)
    if kind == "plain":
        net = plain_reference(net)
    elif kind == "ours_me":
        net.memory_efficient = True
    net.train()
    scfg = override(p.search, order=order)
    w_opt = torch.optim.SGD(net.weights(), lr=scfg.w_lr, momentum=scfg.w_momentum,
                            weight_decay=scfg.w_weight_decay)
    g = torch.Generator().manual_seed(seed + 1)
    data = tuple(t for _ in range(2) for t in (torch.randn(batch, 1, *p.features.shape, generator=g),
                                               torch.randint(0, 4, (batch,), generator=g)))
    return net, Architect(net, scfg), w_opt, data, scfg


def check_equal(profile: str, batch: int) -> None:
    """Loss, logits and all gradients of ours and the reference agree on one batch.

    Compared in float64: in float32 the two evaluation orders round differently, and the cpu
    profile's head norm (a BatchNorm of pooled vectors that differ little between utterances)
    amplifies that rounding to ~1e-3 relative in the first layers' gradients, which would hide a
    real difference. In float64 both agree to ~1e-9.
    """
    torch.manual_seed(0)
    p = PROFILES[profile]
    # dropout off: channels_last stores the cell outputs in another order, so the same seed
    # draws the same number of Bernoulli samples but places them differently (equal in law)
    net = SuperNet(override(p.space, dropout=0.0), 4, p.features.shape).double()
    for m in net.modules():          # and between stacked recurrent layers: ours banks the tanh
        if isinstance(m, nn.RNNBase):  # RNNs, which draws the same masks in another order
            m.dropout = 0.0
    ref = plain_reference(net)
    x = torch.randn(batch, 1, *p.features.shape, dtype=torch.float64)
    y = torch.randint(0, 4, (batch,))
    results = []
    for m in (net, ref):
        torch.manual_seed(1)
        logits = m(x)
        loss = F.cross_entropy(logits, y)
        grads = torch.autograd.grad(loss, list(m.parameters()))
        results.append((logits, loss, grads))
    (l1, s1, g1), (l2, s2, g2) = results
    assert torch.allclose(s1, s2, rtol=1e-9, atol=1e-12), (s1, s2)
    assert torch.allclose(l1, l2, rtol=1e-8, atol=1e-10)
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-9), (a - b).abs().max()


def child(args: argparse.Namespace) -> None:
    """Run in a fresh process: time ``repeats`` steps of one configuration, report JSON."""
    intra, branch = thread_plan(args.kind, args.threads, args.ours_threads)
    if args.allocator == "keep" and args.kind != "ours_me":
        keep_freed_blocks()
    torch.set_num_threads(intra)
    set_branch_threads(branch)
    net, arch, w_opt, data, scfg = make_setup(args.profile, args.batch, args.order, args.kind)
    times = []
    for _ in range(args.repeats + 1):                     # the first step warms up
        t = time.perf_counter()
        search_step(net, arch, w_opt, data, scfg.w_lr)
        times.append(time.perf_counter() - t)
    times = times[1:] or times                            # --repeats 0: the one (cold) step
    print(json.dumps({"seconds": min(times), "peak_gib": peak_rss_gib()}))


def thread_plan(kind: str, threads: int, ours_threads: str) -> tuple[int, int]:
    """(intra-op threads, branch threads) for a row: see the module text."""
    if kind == "ours" and ours_threads == "branches" and threads > 1:
        return 1, threads
    return threads, 1


def peak_rss_gib() -> float:
    """This process's resident-set peak in GiB: ``VmHWM`` of ``/proc/self/status``.

    Not ``ru_maxrss``: Linux carries that over from the parent through fork and exec, so a child
    would report at least the parent's own peak (here: the float64 equality check's).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024 ** 2
    except OSError:
        pass
    import resource  # not Linux: the best available figure
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def run_child(profile: str, batch: int, order: str, kind: str, repeats: int, threads: int,
              jobs: int = 1, ours_threads: str = "branches", allocator: str = "keep") -> dict:
    """Time one configuration in ``jobs`` fresh processes started together (one per core when
    ``jobs`` = cores and ``threads`` = 1): ``seconds`` is the slowest process's best step,
    ``rate`` the samples per second of all of them together, ``peak_gib`` the largest peak."""
    cmd = [sys.executable, __file__, "--child", "--profile", profile, "--batch", str(batch),
           "--order", order, "--kind", kind, "--repeats", str(repeats), "--threads", str(threads),
           "--ours-threads", ours_threads, "--allocator", allocator]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(jobs)]
    results = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"benchmark child failed ({' '.join(cmd)}):\n{err}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return {"seconds": max(r["seconds"] for r in results),
            "rate": sum(batch / r["seconds"] for r in results),
            "peak_gib": max(r["peak_gib"] for r in results)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="cpu", choices=sorted(PROFILES))
    ap.add_argument("--batch", type=int, default=None, help="default: the profile's search batch")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1,
                    help="processes run side by side per row (2 with --threads 1: both cores, "
                         "one search each, as the RAVDESS batches run); samples/s is their sum")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run all rows this many times in turn; each row keeps its best round, so "
                         "a slow spell of the machine does not fall on one net only")
    ap.add_argument("--ours-threads", default="branches", choices=("branches", "intra-op"),
                    help="how our net uses --threads > 1 cores: branch threads with one intra-op "
                         "thread each (default) or intra-op threads (the reference's way)")
    ap.add_argument("--allocator", default="keep", choices=("keep", "default"),
                    help="glibc keeps freed blocks for reuse in both nets' processes (default), "
                         "or its defaults")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--order", default="second", help=argparse.SUPPRESS)
    ap.add_argument("--kind", default="ours", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.batch = args.batch or PROFILES[args.profile].search.batch_size
    if min(args.jobs, args.threads, args.batch, args.rounds) < 1:
        ap.error("--jobs, --threads, --batch and --rounds must be at least 1")
    if args.child:
        return child(args)
    torch.set_num_threads(args.threads)
    set_branch_threads(thread_plan("ours", args.threads, args.ours_threads)[1])
    check_equal(args.profile, min(args.batch, 8))
    print(f"outputs and gradients equal in float64 (profile {args.profile}, batch {min(args.batch, 8)})")
    side = f", {args.jobs} processes side by side" if args.jobs > 1 else ""
    print(f"profile {args.profile}, batch {args.batch}, {args.threads} core(s) per net{side}, "
          f"best of {args.repeats} steps after one warm-up, fresh process per row")
    if args.threads > 1:
        intra, branch = thread_plan("ours", args.threads, args.ours_threads)
        print(f"threads: reference {args.threads} intra-op; ours {intra} intra-op x {branch} "
              f"branch; memory-efficient {args.threads} intra-op")
    print(f"allocator: {'freed blocks kept (both nets)' if args.allocator == 'keep' else 'glibc defaults'}")
    rows = [(order, kind, label) for order in ("first", "second")
            for kind, label in (("plain", "reference (plain)"), ("ours", "ours"),
                                ("ours_me", "ours, memory_efficient"))]
    best: dict[tuple[str, str], dict] = {}
    peak: dict[tuple[str, str], float] = {}
    ratios: dict[str, list[float]] = {"first": [], "second": []}
    for round_ in range(args.rounds):
        if args.rounds > 1:
            print(f"round {round_ + 1} of {args.rounds}")
        print(f"{'order':<7}{'net':<22}{'s/step':>9}{'samples/s':>11}{'peak GiB':>10}")
        this: dict[tuple[str, str], dict] = {}
        for order, kind, label in rows:
            r = run_child(args.profile, args.batch, order, kind, args.repeats, args.threads, args.jobs,
                          args.ours_threads, args.allocator)
            this[order, kind] = r
            if (order, kind) not in best or r["rate"] > best[order, kind]["rate"]:
                best[order, kind] = dict(r)
            peak[order, kind] = max(r["peak_gib"], peak.get((order, kind), 0.0))
            print(f"{order:<7}{label:<22}{r['seconds']:>9.2f}{r['rate']:>11.1f}"
                  f"{r['peak_gib']:>10.2f}", flush=True)
        for order in ratios:
            ratios[order].append(this[order, "ours"]["rate"] / this[order, "plain"]["rate"])
    if args.rounds > 1:
        print(f"per-round speedups, first order: {' '.join(f'{x:.2f}' for x in ratios['first'])}; "
              f"second order: {' '.join(f'{x:.2f}' for x in ratios['second'])}")
        print(f"median per-round speedup (robust to one lucky row): first order "
              f"{statistics.median(ratios['first']):.2f}, second order "
              f"{statistics.median(ratios['second']):.2f}")
        print("best of all rounds per row (peak: the largest):")
        for order, kind, label in rows:
            r = best[order, kind]
            print(f"{order:<7}{label:<22}{r['seconds']:>9.2f}{r['rate']:>11.1f}"
                  f"{peak[order, kind]:>10.2f}")
    rate = {key: r["rate"] for key, r in best.items()}
    print(f"first-order speedup: {rate['first', 'ours'] / rate['first', 'plain']:.2f}")
    print(f"speedup: {rate['second', 'ours'] / rate['second', 'plain']:.2f}")


if __name__ == "__main__":
    main()
