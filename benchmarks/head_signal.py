"""How much the classifier's input differs between utterances at initialisation.

    python benchmarks/head_signal.py [--corpus ravdess] [--data-root ../shared/data/ravdess]
                                     [--profile cpu] [--n 64] [--seeds 0 1 2]

The linear head of both networks reads the time-pooled utterance vector (``pool``'s output,
before the optional head norm). If those vectors are nearly the same for every utterance, the
head sees almost no signal and the loss stays at ln(n_classes). For the first ``--n`` training
utterances of fold 0 this prints, per seed, the spread between utterances of that vector (the
standard deviation over utterances, averaged over the ``seq_hidden`` features) for

- the supernet at initialisation (training mode, as in the first search step), and
- the fixed network of the supernet's initial genotype (same space, also freshly initialised),

both built *without* the head norm, so the numbers show the problem the ``cpu`` profile's
``space.head_norm`` addresses (``emodarts_core/config.py``). Needs the corpus on disk.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emodarts_core.config import PROFILES, override  # noqa: E402
from emodarts_core.data.datasets import load_fold_data  # noqa: E402
from emodarts_core.nas.network import Network  # noqa: E402
from emodarts_core.nas.supernet import SuperNet  # noqa: E402


def pooled_spread(net: torch.nn.Module, x: torch.Tensor) -> float:
    """Mean over features of the between-utterance std of ``net.pool``'s output on ``x``."""
    seen: list[torch.Tensor] = []
    hook = net.pool.register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    try:
        with torch.no_grad():
            net(x)
    finally:
        hook.remove()
    return float(seen[0].std(dim=0).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default="ravdess")
    ap.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess"))
    ap.add_argument("--profile", default="cpu", choices=sorted(PROFILES))
    ap.add_argument("--n", type=int, default=64, help="training utterances of fold 0 to use")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    torch.set_num_threads(1)
    p = PROFILES[args.profile]
    space = override(p.space, head_norm=False)
    data = load_fold_data(args.corpus, args.data_root, p.features, fold=0, progress=True)
    x = data.x_train[: args.n]
    print(f"{args.corpus} fold 0, {len(x)} training utterances, profile {args.profile} "
          f"(head norm off), pooled-vector spread between utterances (std, mean over features)")
    print(f"{'seed':>4} {'supernet':>10} {'derived net':>12}")
    sup, der = [], []
    for seed in args.seeds:
        torch.manual_seed(seed)
        net = SuperNet(space, data.n_classes, data.input_shape).train()
        fixed = Network(net.genotype(), space, data.n_classes, data.input_shape, aux=False).train()
        sup.append(pooled_spread(net, x))
        der.append(pooled_spread(fixed, x))
        print(f"{seed:>4} {sup[-1]:>10.4f} {der[-1]:>12.4f}", flush=True)
    print(f"mean {statistics.mean(sup):>10.4f} {statistics.mean(der):>12.4f}")
    print(f"ratio derived / supernet: {statistics.mean(der) / statistics.mean(sup):.1f}")


if __name__ == "__main__":
    main()
