"""The feature pipeline: many audio files in, one tensor of MFCC images out, in input order.

:func:`extract_features` ties the data layer's pieces together: the cache
(:class:`~emodarts_core.data.feature_cache.FeatureCache`) is asked first; the files it does not
hold are decoded, resampled and cut or padded (:mod:`emodarts_core.data.audio`) and turned into
images by :class:`~emodarts_core.data.mfcc.MFCC`, in a thread pool that keeps every core busy;
new images are stored back and bad files raise or are skipped and reported. The computation
itself lives in :mod:`~emodarts_core.data.mfcc` (checked against
:mod:`~emodarts_core.data.mfcc_reference`), the storage in :mod:`~emodarts_core.data.feature_cache`,
the standardisation that follows in :mod:`~emodarts_core.data.normalization`; this module keeps
only the orchestration, which needs all of audio, MFCC and cache and so belongs to none of them.

Two exact shortcuts make the batched path cheaper than a per-file librosa loop (they change no
value): the waveform is decoded and resampled only up to ``duration_s`` (plus a small margin for
the resampling filter), and STFT frames that lie entirely in the zero padding of a short utterance
are not transformed at all (:func:`~emodarts_core.data.mfcc.power_spectrogram`).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from emodarts_core.config import FeatureConfig
from emodarts_core.data.audio import AudioError, read_audio
from emodarts_core.data.corpora.record import LoadReport, Utterance
from emodarts_core.data.feature_cache import FeatureCache
from emodarts_core.data.mfcc import MFCC

__all__ = ["Features", "extract_features"]


@dataclass
class Features:
    """The result of :func:`extract_features`.

    ``tensor`` holds one ``(n_mfcc, n_frames)`` image per *kept* input, in input order;
    ``kept[i]`` is the position in the input list of ``tensor[i]``. Without ``skip_bad`` every
    input is kept (``kept == list(range(N))``); with it, ``report`` lists what was skipped and why.
    """

    tensor: Tensor
    kept: list[int]
    report: LoadReport = field(default_factory=LoadReport)

    def __len__(self) -> int:
        return len(self.kept)


def _as_path(item: Any, where: int) -> Path:
    if isinstance(item, Utterance):
        return Path(item.path)
    if isinstance(item, (str, PathLike)):
        return Path(item)
    raise TypeError(f"extract_features: input {where} is a {type(item).__name__}, "
                    f"expected a path or an Utterance")


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _decode_chunk(
    paths: Sequence[Path], cfg: FeatureConfig,
) -> tuple[np.ndarray, list[int], list[AudioError | None]]:
    """Decode, resample and pad one chunk: ``(waves (n, n_samples), lengths, errors)``."""
    waves = np.zeros((len(paths), cfg.n_samples), dtype=np.float32)
    lengths, errors = [], []
    for i, p in enumerate(paths):
        try:
            y = read_audio(p, cfg.sample_rate, duration_s=cfg.duration_s)
        except AudioError as exc:
            lengths.append(0)
            errors.append(exc)
            continue
        n = min(len(y), cfg.n_samples)
        waves[i, :n] = y[:n]
        lengths.append(n)
        errors.append(None)
    return waves, lengths, errors


def _featurise(
    paths: list[Path], index: list[int], cfg: FeatureConfig, device: torch.device,
    n_workers: int, chunk_size: int,
) -> Iterator[tuple[list[int], np.ndarray, list[AudioError | None]]]:
    """Yield ``(indices, images, errors)`` chunk by chunk, in order.

    A pool of ``n_workers`` threads decodes each chunk (:func:`_decode_chunk`). On CPU the same
    thread also runs the MFCC, with torch's intra-op threads set to 1 for the duration so the
    workers, not torch, spread the work over the cores (the FFT, matmuls and soxr release the
    GIL). On CUDA the main thread moves each decoded chunk to the device and runs the MFCC there
    while the workers decode the next chunks.
    """
    if not paths:
        return
    mfcc = MFCC(cfg).to(device)
    on_cpu = device.type == "cpu"
    starts = range(0, len(paths), chunk_size)

    def run(images_of: np.ndarray, waves: np.ndarray, lengths: list[int], errors: list,
            dev: torch.device) -> None:
        good = [k for k, e in enumerate(errors) if e is None]
        if good:
            with torch.inference_mode():
                x = torch.from_numpy(waves[good]).to(dev)
                images_of[good] = mfcc(x, lengths=[lengths[k] for k in good]).cpu().numpy()

    def work(start: int) -> tuple[np.ndarray | None, np.ndarray, list[int], list]:
        waves, lengths, errors = _decode_chunk(paths[start:start + chunk_size], cfg)
        images = None
        if on_cpu:
            images = np.zeros((len(errors), *cfg.shape), dtype=np.float32)
            run(images, waves, lengths, errors, device)
        return images, waves, lengths, errors

    old_threads = torch.get_num_threads()
    if on_cpu and n_workers > 1:
        torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            futures = [pool.submit(work, start) for start in starts]
            try:
                for start, fut in zip(starts, futures):
                    images, waves, lengths, errors = fut.result()
                    if images is None:
                        images = np.zeros((len(errors), *cfg.shape), dtype=np.float32)
                        run(images, waves, lengths, errors, device)
                    yield index[start:start + chunk_size], images, errors
            finally:  # an error (or an abandoned generator): drop the work not yet started
                for fut in futures:
                    fut.cancel()
    finally:
        torch.set_num_threads(old_threads)


def extract_features(
    paths_or_records: Iterable[str | PathLike[str] | Utterance],
    cfg: FeatureConfig,
    *,
    cache_dir: str | PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    workers: int | None = None,
    skip_bad: bool = False,
    report: LoadReport | None = None,
    progress: bool = True,
    chunk_size: int = 8,
) -> Features:
    """MFCC images for many files, in input order, optionally through an on-disk cache.

    Args:
        paths_or_records: audio paths or :class:`~emodarts_core.data.corpora.record.Utterance` records.
        cfg: the feature configuration (rate, duration, MFCC settings, pooling).
        cache_dir: a :class:`FeatureCache` directory; files already featurised with ``cfg`` are
            read from it and new ones are added. ``None`` disables caching.
        device: where the MFCC runs. On CPU each worker thread decodes and featurises its own
            chunk (torch limited to one thread per worker for the call, so ``workers`` threads
            keep ``workers`` cores busy); on CUDA the workers decode and the GPU computes the MFCC.
        workers: threads (default: the CPU cores available to this process).
        skip_bad: skip files that fail (:class:`~emodarts_core.data.audio.AudioError`) and record them
            in ``report`` instead of raising.
        report: a :class:`LoadReport` to append skipped files to (a new one when ``None``).
        progress: show a ``tqdm`` progress bar.
        chunk_size: utterances per MFCC batch.

    Returns:
        :class:`Features` (``tensor`` float32 on CPU, ``kept`` input positions, ``report``).

    Raises:
        AudioError: the first bad file, when ``skip_bad`` is false.
    """
    from tqdm.auto import tqdm

    paths = [_as_path(x, i) for i, x in enumerate(paths_or_records)]
    if chunk_size < 1:
        raise ValueError(f"extract_features: chunk_size must be >= 1, got {chunk_size}")
    n_workers = _default_workers() if workers is None else int(workers)
    if n_workers < 1:
        raise ValueError(f"extract_features: workers must be >= 1, got {workers}")
    report = LoadReport() if report is None else report
    device = torch.device(device)
    out = np.empty((len(paths), *cfg.shape), dtype=np.float32)
    ok = np.zeros(len(paths), dtype=bool)
    hashes: list[str | None] = [None] * len(paths)
    cache = FeatureCache(cache_dir) if cache_dir is not None else None
    bar = tqdm(total=len(paths), desc="features", unit="file", disable=not progress)

    def fail(i: int, exc: AudioError) -> None:
        if not skip_bad:
            raise exc
        report.skip(paths[i], exc.problem)

    try:
        todo: list[int] = []
        for i, p in enumerate(paths):
            if cache is None:
                todo.append(i)
                continue
            try:
                hashes[i] = cache.content_hash(p)
            except AudioError as exc:
                fail(i, exc)
                bar.update(1)
                continue
            n_bad = len(cache.bad_entries)
            image = cache.load(cfg, hashes[i])
            if len(cache.bad_entries) > n_bad:
                report.note(p, f"feature cache entry {cache.bad_entries[-1][0]} held "
                               f"{cache.bad_entries[-1][1]}: computed again")
            if image is None:
                todo.append(i)
            else:
                out[i], ok[i] = image, True
                bar.update(1)

        for idx, images, errors in _featurise([paths[i] for i in todo], todo, cfg, device,
                                              n_workers, chunk_size):
            for k, i in enumerate(idx):
                if errors[k] is not None:
                    fail(i, errors[k])
                    continue
                if not np.isfinite(images[k]).all():    # never cache (or train on) NaN
                    fail(i, AudioError(paths[i], "its features hold NaN or infinite values"))
                    continue
                out[i], ok[i] = images[k], True
                if cache is not None:
                    cache.save(cfg, hashes[i], images[k])
            bar.update(len(idx))
    finally:
        bar.close()
        if cache is not None:
            cache.flush()
    kept = [int(i) for i in np.flatnonzero(ok)]
    tensor = torch.from_numpy(out if len(kept) == len(paths) else out[ok])
    return Features(tensor=tensor, kept=kept, report=report)
