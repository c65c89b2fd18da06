"""Featurisation benchmark: the usual per-file librosa loop against emodarts_core's pipeline.

    python benchmarks/features.py [--data PATH] [--profile paper] [--limit N] [--workers W]

The same files are featurised three ways:

1. the plain loop most SER code has: ``librosa.load(path, sr=...)``, cut or pad to the fixed
   length, the librosa MFCC, then max-pooling in time, one file after the other;
2. ``emodarts_core.data.features.extract_features`` with an empty cache ("cold");
3. the same call again, now answered from the cache ("warm").

Outputs are checked against the librosa loop (per-utterance relative error
``||ours - ref|| / ||ref||`` < 1e-3) before any timing is printed. Data: ``--data`` (a folder
searched recursively for wav/flac/ogg), else the RAVDESS copy in ``/work/shared/data/ravdess``
when present, else (or with ``--generated``) a freshly generated corpus. The last line is
``speedup: X``: cold files/s of ours over the librosa loop. Each method first featurises one
untimed warm-up file (imports, FFT plans). ``--single`` adds a row for ours with one worker
and no cache, which separates the per-core gain from the use of several cores.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

AUDIO_EXT = {".wav", ".flac", ".ogg"}
DEFAULT_DATA = Path("/work/shared/data/ravdess")


def find_audio(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXT and p.is_file())


def librosa_loop(paths: list[Path], cfg) -> np.ndarray:
    """What per-file SER feature code usually does (with the paper's settings)."""
    import librosa

    from emodarts_core.data.mfcc_reference import max_pool_time

    out = np.empty((len(paths), *cfg.shape), dtype=np.float32)
    for i, p in enumerate(paths):
        y, _ = librosa.load(str(p), sr=cfg.sample_rate)
        y = librosa.util.fix_length(y, size=cfg.n_samples)
        mel = librosa.feature.melspectrogram(
            y=y, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
            fmin=cfg.fmin, fmax=cfg.fmax, pad_mode="constant")
        m = librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=cfg.top_db), n_mfcc=cfg.n_mfcc)
        out[i] = max_pool_time(m, cfg.time_pool)
    return out


def timed(fn, *args, **kwargs):
    """``(result, (wall seconds, CPU seconds of this process over all its threads))``."""
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return result, (time.perf_counter() - t0, time.process_time() - c0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="folder of audio files")
    ap.add_argument("--generated", action="store_true",
                    help="use a freshly generated corpus even when RAVDESS is present")
    ap.add_argument("--profile", default="paper", help="feature profile (paper, 16k, smoke)")
    ap.add_argument("--limit", type=int, default=200, help="at most this many files (0 = all)")
    ap.add_argument("--workers", type=int, default=None, help="threads for ours (default: cores)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--single", action="store_true", help="also time ours with one worker")
    args = ap.parse_args(argv)

    import torch

    from emodarts_core.config import FEATURE_PROFILES
    from emodarts_core.data.features import extract_features
    from emodarts_core.data.mfcc_reference import relative_error

    if args.profile not in FEATURE_PROFILES:
        ap.error(f"--profile: unknown {args.profile!r}; choose one of {sorted(FEATURE_PROFILES)}")
    cfg = FEATURE_PROFILES[args.profile]
    scratch = Path(tempfile.mkdtemp(prefix="emodarts-featbench-"))
    try:
        if args.data is not None:
            if not args.data.is_dir():
                ap.error(f"--data: {args.data} is not a folder")
            source, paths = str(args.data), find_audio(args.data)
        elif not args.generated and DEFAULT_DATA.is_dir() and find_audio(DEFAULT_DATA):
            source, paths = str(DEFAULT_DATA), find_audio(DEFAULT_DATA)
        else:
            from emodarts_core.data.corpora.generated import \
                generate_corpus  # lazily: optional here

            root = generate_corpus(scratch / "generated", seed=0)
            source, paths = "generated corpus", find_audio(Path(root))
        if args.limit:
            paths = paths[: args.limit]
        if len(paths) < 2:
            print(f"need at least 2 audio files, found {len(paths)} in {source}", file=sys.stderr)
            return 2
        warm_up, paths = paths[0], paths[1:]
        workers = args.workers or len(os.sched_getaffinity(0))

        librosa_loop([warm_up], cfg)
        ref, t_lib = timed(librosa_loop, paths, cfg)

        extract_features([warm_up], cfg, device=args.device, workers=workers, progress=False)
        rows = []
        if args.single:
            single, t_single = timed(extract_features, paths, cfg, device=args.device, workers=1,
                                     progress=False)
            rows.append(("ours, 1 worker, no cache", t_single, single.tensor.numpy()))
        cache = scratch / "cache"
        cold, t_cold = timed(extract_features, paths, cfg, cache_dir=cache, device=args.device,
                             workers=workers, progress=False)
        warm, t_warm = timed(extract_features, paths, cfg, cache_dir=cache, device=args.device,
                             workers=workers, progress=False)
        rows += [(f"ours cold ({workers} workers)", t_cold, cold.tensor.numpy()),
                 ("ours warm cache", t_warm, warm.tensor.numpy())]

        # correctness first: no timing is reported for outputs that do not match
        checks = [(name, relative_error(x, ref).max(), np.abs(x - ref).max()) for name, _, x in rows]
        bad = [(n, e) for n, e, _ in checks if not e < 1e-3]
        if bad:
            print(f"outputs do not match librosa (relative error >= 1e-3): {bad}", file=sys.stderr)
            return 1

        n = len(paths)
        print(f"data: {source}, {n} files (+1 warm-up), profile {args.profile} "
              f"{cfg.shape[0]}x{cfg.shape[1]} @ {cfg.sample_rate} Hz, device {args.device}, "
              f"torch {torch.__version__}, {len(os.sched_getaffinity(0))} CPU cores, "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"| {'method':<30} | {'wall s':>7} | {'CPU s':>7} | {'files/s':>8} | "
              f"{'vs librosa':>10} | {'max rel err':>11} | {'max abs diff':>12} |")
        print(f"|{'-' * 32}|{'-' * 9}|{'-' * 9}|{'-' * 10}|{'-' * 12}|{'-' * 13}|{'-' * 14}|")
        print(f"| {'librosa loop (reference)':<30} | {t_lib[0]:7.2f} | {t_lib[1]:7.2f} | "
              f"{n / t_lib[0]:8.1f} | {1.0:9.2f}x | {'-':>11} | {'-':>12} |")
        for (name, (wall, cpu), _), (_, err, diff) in zip(rows, checks):
            print(f"| {name:<30} | {wall:7.2f} | {cpu:7.2f} | {n / wall:8.1f} | "
                  f"{t_lib[0] / wall:9.2f}x | {err:11.2e} | {diff:12.2e} |")
        print(f"speedup: {t_lib[0] / t_cold[0]:.2f}")
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
