"""Where a search step's time goes, piece by piece: the measurements behind two CPU choices.

    python benchmarks/kernels.py [--repeats 7]

1. **The SeqNN cell's share.** One forward + backward of the ``cpu``-profile supernet and of the
   plain reference of ``benchmarks/search_step.py``, whole and SeqNN cell alone (on the cell's
   real input), at batch 16 and 32.
2. **tanh RNNs one by one vs batched.** The six tanh-RNN candidates of a SeqNN edge (``rnn_1..4``,
   ``rnn_att_1/2``'s bidirectional stacks; ``H = 32``, ``T = 32``), forward + backward, as
   PyTorch's ``nn.RNN`` modules one by one and as :func:`emodarts_core.fast.recurrent.run_stacks`.
3. **BatchNorm layouts.** Forward + backward of a training-mode BatchNorm on a ``channels_last``
   CPU map: normalised in the contiguous layout and converted back (``relayout``) vs PyTorch's
   native ``channels_last`` kernel vs :func:`emodarts_core.fast.batchnorm.batch_norm_channels_last`
   (``wide``), for several channel counts (batch 16).
4. **Edges sharing their source state.** One forward + backward of the ``cpu``-profile supernet
   with the CNN edges leaving a state sharing its ReLU and pooled copies
   (:class:`emodarts_core.fast.source_cache.SourceCache`) and with every edge computing all its
   candidates.

Best of ``--repeats`` after a warm-up, one torch thread. Run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search_step import plain_reference  # noqa: E402  (same folder)

from emodarts_core.config import PROFILES  # noqa: E402
from emodarts_core.fast.batchnorm import batch_norm_channels_last  # noqa: E402
from emodarts_core.fast.recurrent import run_stacks  # noqa: E402
from emodarts_core.fast.layout import relayout  # noqa: E402
from emodarts_core.nas.ops import SEQ_OPS  # noqa: E402
from emodarts_core.nas.supernet import SuperNet  # noqa: E402


def best_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * min(times)


def seq_share(repeats: int) -> None:
    p = PROFILES["cpu"]
    print("1. cpu-profile supernet, one forward + backward (ms): whole net / SeqNN cell alone")
    print(f"{'batch':>5} {'ours':>16} {'reference':>16}")
    for batch in (16, 32):
        torch.manual_seed(0)
        net = SuperNet(p.space, 8, p.features.shape).train()
        ref = plain_reference(net)
        x = torch.randn(batch, 1, *p.features.shape)
        y = torch.randint(0, 8, (batch,))
        row = []
        for m in (net, ref):
            with torch.no_grad():                        # the SeqNN cell's real input
                s0 = s1 = m.stem(x)
                if m.channels_last:
                    s0 = s1 = s0.contiguous(memory_format=torch.channels_last)
                w = m.alpha_weights()
                for cell in m.cells:
                    s0, s1 = s1, cell(s0, s1, w["reduce"] if cell.reduction else w["normal"])
                q0, q1 = m.seq_in(s0, s1)
            q0.requires_grad_()
            q1.requires_grad_()
            whole = best_ms(lambda: m.loss(x, y).backward(), repeats)
            seq = best_ms(lambda: m.seq_cells[0](q0, q1, m.alpha_weights()["seq"]).sum().backward(),
                          repeats)
            row.append(f"{whole:>7.0f} / {seq:>6.0f}")
        print(f"{batch:>5} {row[0]:>16} {row[1]:>16}")


def rnn_bank(repeats: int) -> None:
    H, T = 32, 32
    names = ["rnn_1", "rnn_2", "rnn_3", "rnn_4", "rnn_att_1", "rnn_att_2"]
    print("\n2. six tanh-RNN candidates' stacks, forward + backward (ms)")
    print(f"{'batch':>5} {'nn.RNN one by one':>18} {'run_stacks':>11}")
    for batch in (16, 32):
        torch.manual_seed(0)
        rnns = [SEQ_OPS[n](H).rnn for n in names]
        x = torch.randn(batch, T, H, requires_grad=True)
        plain = best_ms(lambda: sum(r(x)[0].sum() for r in rnns).backward(), repeats)
        banked = best_ms(lambda: sum(y.sum() for y in run_stacks(rnns, x)).backward(), repeats)
        print(f"{batch:>5} {plain:>18.1f} {banked:>11.1f}")


def batchnorm_layouts(repeats: int) -> None:
    print("\n3. BatchNorm of a channels_last map, training mode, forward + backward (ms), batch 16")
    print(f"{'C':>4} {'map':>8} {'relayout':>9} {'native':>7} {'wide':>6}")
    for C, h, w in ((2, 40, 125), (4, 40, 125), (6, 40, 125), (8, 40, 125), (12, 40, 125),
                    (16, 20, 63), (20, 20, 63), (24, 20, 63), (48, 10, 32), (128, 32, 32)):
        x = torch.randn(16, C, h, w).contiguous(memory_format=torch.channels_last).requires_grad_()
        g = torch.randn_like(x)                  # a channels_last gradient, as in the network

        def detour():
            y = F.batch_norm(relayout(x, torch.contiguous_format), None, None, training=True)
            relayout(y, torch.channels_last).backward(g)

        def native():
            F.batch_norm(x, None, None, training=True).backward(g)

        def wide():
            batch_norm_channels_last(x)[0].backward(g)

        print(f"{C:>4} {f'{h}x{w}':>8} {best_ms(detour, repeats):>9.2f} {best_ms(native, repeats):>7.2f}"
              f" {best_ms(wide, repeats):>6.2f}")


def shared_sources(repeats: int) -> None:
    print("\n4. cpu-profile supernet, one forward + backward (ms), batch 16: CNN edges leaving one"
          " state sharing its ReLU and pooling (SourceCache) or each computing everything")
    torch.manual_seed(0)
    p = PROFILES["cpu"]
    shared = SuperNet(p.space, 8, p.features.shape).train()
    alone = copy.deepcopy(shared)
    for cell in alone.cells:
        cell.share_sources = False
    x = torch.randn(16, 1, *p.features.shape)
    y = torch.randint(0, 8, (16,))
    times: dict[str, list[float]] = {"shared": [], "each edge alone": []}
    for m in (shared, alone):
        m.loss(x, y).backward()                  # warm-up
    for _ in range(repeats):                     # interleaved: both see the same machine load
        for name, m in (("shared", shared), ("each edge alone", alone)):
            t = time.perf_counter()
            m.loss(x, y).backward()
            times[name].append(time.perf_counter() - t)
    for name, ts in times.items():
        print(f"{name:>16}: best {1000 * min(ts):6.0f}   median {1000 * sorted(ts)[len(ts) // 2]:6.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, best of {args.repeats} after a warm-up\n")
    seq_share(max(2, args.repeats // 3))
    rnn_bank(args.repeats)
    batchnorm_layouts(args.repeats)
    shared_sources(args.repeats)


if __name__ == "__main__":
    main()
