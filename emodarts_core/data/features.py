"""From speech files to the model's input: MFCC images, their on-disk cache, and normalisation.

The paper's features (see the book's method chapter) are librosa MFCCs of the first 8 s of each
utterance at 32 750 Hz: 128 Slaney mel bands of the power spectrogram (n_fft 2048, hop 512, Hann,
centred frames with zero padding), ``power_to_db`` with ``top_db`` 80 relative to the utterance's
own maximum, an orthonormal DCT-II keeping 128 coefficients, then a max-pool by 4 along time:
a 128 x 128 image. Every one of these numbers is a field of
:class:`~emodarts_core.config.FeatureConfig`.

This module has three layers:

* :func:`librosa_mfcc` is the **reference**: librosa's mel spectrogram, ``power_to_db`` and
  ``librosa.feature.mfcc`` with those settings, used to check everything else.
* :class:`MFCC` computes **the same thing** as a batched ``torch.nn.Module`` in float32 on CPU or
  CUDA: one short-time FFT (``torch.stft`` on CUDA, scipy's float32 FFT on CPU, which measured
  about 3x faster there), one matmul with librosa's own mel filterbank, the dB conversion with
  the per-utterance ``top_db`` floor, one matmul with the orthonormal DCT matrix and the pooling.
  It agrees with the reference to a relative error of about 2e-6 (tests demand < 1e-3).
* :func:`extract_features` runs the whole pipeline over many files: decoding, resampling and
  cutting/padding (:mod:`emodarts_core.data.audio`) together with the MFCC, in a thread pool that keeps
  every core busy, with an optional :class:`FeatureCache` so a file is featurised once per
  feature configuration.

Two exact shortcuts make the batched path cheaper than a per-file librosa loop (they change no
value): the waveform is decoded and resampled only up to ``duration_s`` (plus a small margin for
the resampling filter), and STFT frames that lie entirely in the zero padding of a short utterance
are not transformed at all -- their power is exactly zero, which is what the FFT of zeros gives.

:class:`Normalizer` standardises each coefficient with statistics fitted on a fold's training
utterances only.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from emodarts_core.config import FeatureConfig, to_dict
from emodarts_core.data.audio import AudioError, pad_or_cut, read_audio
from emodarts_core.data.corpora.record import LoadReport, Utterance

__all__ = [
    "FEATURE_VERSION",
    "librosa_mfcc",
    "max_pool_time",
    "MFCC",
    "Features",
    "extract_features",
    "FeatureCache",
    "Normalizer",
    "relative_error",
]

#: Part of every cache key: bump it when the feature computation changes, so old entries are
#: never served for the new definition.
FEATURE_VERSION = 1

_AMIN = 1e-10   # librosa.power_to_db's default floor on the power before the logarithm


# ---------------------------------------------------------------------------------------------
# The reference
def max_pool_time(m: np.ndarray, factor: int) -> np.ndarray:
    """Max over non-overlapping groups of ``factor`` frames along the last axis; a remainder that
    does not fill a group is dropped (the paper's ``(1, factor)`` pooling)."""
    if factor < 1:
        raise ValueError(f"max_pool_time: factor must be >= 1, got {factor}")
    if factor == 1:
        return m
    t = (m.shape[-1] // factor) * factor
    return m[..., :t].reshape(*m.shape[:-1], t // factor, factor).max(axis=-1)


def librosa_mfcc(y: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """The reference MFCC image of one waveform, computed by librosa.

    ``y`` is a mono waveform at ``cfg.sample_rate``; it is first cut or zero-padded to
    ``cfg.n_samples`` (:func:`~emodarts_core.data.audio.pad_or_cut`). Then the mel power spectrogram
    (``librosa.feature.melspectrogram``: Slaney mel bands with Slaney area normalisation, power 2,
    Hann window, ``center=True`` with zero padding), ``librosa.power_to_db`` (ref 1, amin 1e-10,
    ``cfg.top_db`` below the utterance's maximum), the DCT-II ortho of ``librosa.feature.mfcc``,
    and finally :func:`max_pool_time` by ``cfg.time_pool``. This is what
    ``librosa.feature.mfcc(y=y, sr=..., n_mfcc=...)`` computes with these settings (which
    forwards no ``top_db`` of its own, hence the explicit steps).

    Returns a float32 array of shape ``cfg.shape`` = ``(n_mfcc, n_frames)``.
    """
    import librosa  # imported here: heavy, and only the reference needs it

    y = pad_or_cut(np.asarray(y, dtype=np.float32), cfg.n_samples)
    mel = librosa.feature.melspectrogram(
        y=y, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.n_fft,
        window="hann", center=True, pad_mode="constant", power=2.0, n_mels=cfg.n_mels,
        fmin=cfg.fmin, fmax=cfg.fmax, htk=False, norm="slaney",
    )
    # power_to_db is called explicitly: librosa.feature.mfcc does not forward ``top_db``
    log_mel = librosa.power_to_db(mel, ref=1.0, amin=_AMIN, top_db=cfg.top_db)
    m = librosa.feature.mfcc(S=log_mel, n_mfcc=cfg.n_mfcc, dct_type=2, norm="ortho", lifter=0)
    return max_pool_time(m, cfg.time_pool).astype(np.float32, copy=False)


def relative_error(ours: np.ndarray | Tensor, ref: np.ndarray | Tensor) -> np.ndarray:
    """Per-utterance relative error ``||ours - ref|| / ||ref||`` (Frobenius norm over each
    utterance's image); inputs ``(n_mfcc, n_frames)`` or ``(N, n_mfcc, n_frames)``."""
    a = np.asarray(ours, dtype=np.float64)
    b = np.asarray(ref, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"relative_error: shapes differ, {a.shape} vs {b.shape}")
    a, b = a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:])
    num = np.linalg.norm((a - b).reshape(len(a), -1), axis=1)
    den = np.linalg.norm(b.reshape(len(b), -1), axis=1)
    return num / np.maximum(den, 1e-30)


# ---------------------------------------------------------------------------------------------
# The batched torch implementation
class MFCC(nn.Module):
    """Batched MFCC images in torch, numerically the same as :func:`librosa_mfcc`.

    ``forward(wave, lengths=None)`` maps ``(B, cfg.n_samples)`` float32 waveforms (already cut or
    padded) to ``(B, n_mfcc, n_frames)`` float32, on whatever device the module is on.

    The mel filterbank is librosa's own (``librosa.filters.mel``, Slaney scale and norm) and the
    DCT is the orthonormal DCT-II matrix, both stored as buffers. The dB floor ``top_db`` is
    applied per utterance relative to that utterance's maximum, as ``librosa.power_to_db`` does
    on a single spectrogram.

    ``lengths`` (optional, one int per row) gives how many leading samples of each row are real
    signal, the rest being zero padding. The STFT then skips the frames that see only padding:
    their power is exactly zero either way, so the output is unchanged and short utterances
    cost less.

    ``cpu_scipy_fft`` (default on) lets CPU tensors take the faster scipy FFT in
    :meth:`power_spectrogram`; switch it off to run ``torch.stft`` everywhere.
    """

    def __init__(self, cfg: FeatureConfig, *, cpu_scipy_fft: bool = True) -> None:
        super().__init__()
        import librosa
        import scipy.fft

        if cfg.n_mfcc > cfg.n_mels:
            raise ValueError(f"FeatureConfig: n_mfcc ({cfg.n_mfcc}) > n_mels ({cfg.n_mels})")
        self.cfg = cfg
        self.cpu_scipy_fft = cpu_scipy_fft
        self.n_frames_full = 1 + cfg.n_samples // cfg.hop_length   # before pooling
        mel = librosa.filters.mel(
            sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax,
            htk=False, norm="slaney", dtype=np.float32,
        )
        dct = scipy.fft.dct(np.eye(cfg.n_mels), type=2, norm="ortho", axis=0)[: cfg.n_mfcc]
        self.register_buffer("window", torch.hann_window(cfg.n_fft, periodic=True), persistent=False)
        self.register_buffer("mel_fb", torch.from_numpy(mel), persistent=False)
        self.register_buffer("dct", torch.from_numpy(dct.astype(np.float32)), persistent=False)

    def extra_repr(self) -> str:
        c = self.cfg
        return (f"sr={c.sample_rate}, n_fft={c.n_fft}, hop={c.hop_length}, n_mels={c.n_mels}, "
                f"n_mfcc={c.n_mfcc}, top_db={c.top_db}, time_pool={c.time_pool}")

    def power_spectrogram(self, wave: Tensor, lengths: Sequence[int] | Tensor | None = None) -> Tensor:
        """``|STFT|^2`` as ``(B, n_fft // 2 + 1, T)`` float32: centred Hann frames, zero padding.

        Without ``lengths`` all ``1 + n_samples // hop`` frames are returned. With ``lengths``,
        ``T`` may be smaller: frames past ``T`` see only padding, and their power is exactly 0.

        On CUDA (or when gradients are needed) this is ``torch.stft``. On CPU the frames are cut
        with ``unfold`` and transformed with ``scipy.fft.rfft`` in float32, which measured about
        3x faster than ``torch.stft`` on the same frames; the values agree to float rounding.
        """
        cfg = self.cfg
        n = wave.shape[-1]
        used = n
        if lengths is not None:
            longest = int(torch.as_tensor(lengths).max())
            # a frame whose window starts at or after the last real sample sees only zeros
            used = min(n, max(longest + cfg.n_fft // 2, cfg.n_fft))
        x = wave[:, :used]
        if x.device.type != "cpu" or x.requires_grad or not self.cpu_scipy_fft:
            spec = torch.stft(
                x, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.n_fft,
                window=self.window, center=True, pad_mode="constant", return_complex=True,
            )
            return torch.view_as_real(spec).square().sum(-1)
        import scipy.fft

        half = cfg.n_fft // 2
        frames = torch.nn.functional.pad(x, (half, half)).unfold(-1, cfg.n_fft, cfg.hop_length)
        frames = (frames * self.window).numpy()                             # (B, T, n_fft)
        spec = scipy.fft.rfft(frames, axis=-1)                              # complex64
        power = spec.real * spec.real + spec.imag * spec.imag               # float32
        return torch.from_numpy(power).transpose(-1, -2)

    def forward(self, wave: Tensor, lengths: Sequence[int] | Tensor | None = None) -> Tensor:
        cfg = self.cfg
        if wave.ndim != 2 or wave.shape[-1] != cfg.n_samples:
            raise ValueError(
                f"MFCC: expected waveforms of shape (B, {cfg.n_samples}) "
                f"({cfg.duration_s} s at {cfg.sample_rate} Hz), got {tuple(wave.shape)}"
            )
        wave = wave.to(dtype=torch.float32)
        power = self.power_spectrogram(wave, lengths)                      # (B, F, T <= T_full)
        mel = torch.matmul(self.mel_fb, power)                             # (B, n_mels, T)
        db = 10.0 * torch.log10(torch.clamp(mel, min=_AMIN))               # ref = 1: minus 0 dB
        missing = self.n_frames_full - db.shape[-1]
        if missing > 0:  # frames of pure padding: power 0, i.e. 10 log10(amin) dB
            db = torch.nn.functional.pad(db, (0, missing), value=10.0 * math.log10(_AMIN))
        if cfg.top_db is not None:
            peak = db.amax(dim=(-2, -1), keepdim=True)
            db = torch.maximum(db, peak - cfg.top_db)
        mfcc = torch.matmul(self.dct, db)                                  # (B, n_mfcc, T)
        p = cfg.time_pool
        if p > 1:
            t = (mfcc.shape[-1] // p) * p
            mfcc = mfcc[..., :t].unflatten(-1, (t // p, p)).amax(dim=-1)
        return mfcc


# ---------------------------------------------------------------------------------------------
# The on-disk cache
class FeatureCache:
    """Feature images on disk, keyed by (feature configuration, file content).

    Layout::

        cache_dir/
          content-index.json         path -> (size, mtime_ns, inode, content hash) memo
          <config key>/config.json   the FeatureConfig the entries below were made with
          <config key>/ab/abcdef....npy  one float32 (n_mfcc, n_frames) image per file content

    *Correctness is decided by content.* An entry's name is the BLAKE2b hash of the file's
    bytes, inside a directory named by the hash of the feature configuration and
    :data:`FEATURE_VERSION`; a changed configuration or a changed file therefore looks up a
    different name and can never be served a stale image. Renamed or copied files reuse entries.

    *Speed comes from a memo.* Hashing every file on every run would read the whole corpus, so
    the content hash is memoised by ``(path, size, mtime_ns, inode)``, which any rewrite or
    replacement of a file changes. Like git's index, a file modified in the last
    ``racy_window_s`` seconds before hashing is not memoised (its timestamp could still
    coincide with a later same-size edit); it is simply hashed again next time. A warm run then
    costs one ``stat`` and one small ``.npy`` read per file (its header compared byte for byte
    with the one :meth:`save` writes, ``np.load`` only as a fallback). One file per entry,
    rather than shards, keeps writes independent and atomic, lets several processes share a
    cache without locks and makes invalidation a matter of naming; a 64 KB read per file
    still reaches thousands of files per second (see ``benchmarks/RESULTS.md``).

    Every write is atomic (temporary file in the same directory, then ``os.replace``), so a
    crashed or concurrent writer never leaves a half-written entry under a real name; a
    concurrent update of the memo can at worst drop memo lines, which only costs a re-hash.
    """

    INDEX = "content-index.json"

    def __init__(self, cache_dir: str | PathLike[str], *, racy_window_s: float = 2.0) -> None:
        self.root = Path(cache_dir)
        self.racy_window_s = racy_window_s
        self._memo: dict[str, list] | None = None
        self._new_memo: dict[str, list] = {}
        self._lock = threading.Lock()
        self._config_dirs: dict[FeatureConfig, str] = {}
        #: Entries found damaged by :meth:`load` (file, reason); each was computed again.
        self.bad_entries: list[tuple[str, str]] = []

    # -- keys -----------------------------------------------------------------------------
    @staticmethod
    def config_key(cfg: FeatureConfig) -> str:
        """A short hash of the extraction settings and :data:`FEATURE_VERSION`.

        ``normalization`` is left out: it acts after the cache, on whole splits.
        """
        blob = json.dumps({"version": FEATURE_VERSION, "config": extraction_settings(cfg)},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def content_hash(self, path: str | PathLike[str]) -> str:
        """BLAKE2b-128 of the file's bytes, memoised by (path, size, mtime_ns, inode)."""
        p = os.fspath(path)
        try:
            st = os.stat(p)
        except FileNotFoundError as exc:
            raise AudioError(p, "file not found") from exc
        except OSError as exc:
            raise AudioError(p, f"cannot read ({exc})") from exc
        key = os.path.abspath(p)
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        memo = self._load_memo()
        hit = memo.get(key)
        if hit is not None and hit[:3] == stamp:
            return hit[3]
        try:
            digest = _hash_file(p)
        except OSError as exc:  # a directory, no permission, ...
            raise AudioError(p, f"cannot read ({exc})") from exc
        if time.time_ns() - st.st_mtime_ns > self.racy_window_s * 1e9:
            with self._lock:
                memo[key] = stamp + [digest]
                self._new_memo[key] = stamp + [digest]
        return digest

    def entry_path(self, cfg: FeatureConfig, content_hash: str) -> Path:
        """Where the image of content ``content_hash`` under ``cfg`` lives (existing or not)."""
        return Path(self._entry_file(cfg, content_hash))

    # -- entries --------------------------------------------------------------------------
    def load(self, cfg: FeatureConfig, content_hash: str) -> np.ndarray | None:
        """The cached image (read-only), or ``None`` when absent or unusable (it is then
        recomputed).

        The fast path reads the file in one go and checks its ``.npy`` header byte for byte
        against the header ``save`` writes for this shape; anything else goes through
        ``np.load`` and is accepted only with the right shape and dtype. Every value must be
        finite: an entry that exists but fails a check is never trusted, and its file is
        listed in :attr:`bad_entries` (with the reason) so the caller can say it was redone.
        """
        file = self._entry_file(cfg, content_hash)
        try:
            with open(file, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            return self._bad(file, f"unreadable ({exc})")
        shape = cfg.shape
        header = _npy_header(shape)
        if data.startswith(header) and len(data) == len(header) + 4 * shape[0] * shape[1]:
            arr = np.frombuffer(data, dtype=np.float32, offset=len(header)).reshape(shape)
        else:
            try:
                arr = np.load(io.BytesIO(data), allow_pickle=False)
            except (OSError, ValueError, EOFError):
                return self._bad(file, "not a readable .npy file")
            if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != np.float32:
                return self._bad(file, f"shape {getattr(arr, 'shape', None)} or dtype "
                                       f"{getattr(arr, 'dtype', None)} instead of {shape} float32")
        if not np.isfinite(arr).all():
            return self._bad(file, f"{int(np.count_nonzero(~np.isfinite(arr)))} NaN or "
                                   f"infinite value(s)")
        return arr

    def _bad(self, file: str, reason: str) -> None:
        with self._lock:
            self.bad_entries.append((str(file), reason))
        return None

    def save(self, cfg: FeatureConfig, content_hash: str, image: np.ndarray) -> None:
        """Store one image atomically."""
        image = np.asarray(image, dtype=np.float32)
        if image.shape != cfg.shape:
            raise ValueError(f"FeatureCache.save: image shape {image.shape} != config shape {cfg.shape}")
        path = self.entry_path(cfg, content_hash)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npy")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, image, allow_pickle=False)
            os.replace(tmp, path)
        except BaseException:
            _unlink_quietly(tmp)
            raise

    def get(self, path: str | PathLike[str], cfg: FeatureConfig) -> np.ndarray | None:
        """The cached image for file ``path`` under ``cfg``, or ``None``."""
        return self.load(cfg, self.content_hash(path))

    def put(self, path: str | PathLike[str], cfg: FeatureConfig, image: np.ndarray) -> None:
        """Cache ``image`` as the features of file ``path`` under ``cfg``."""
        self.save(cfg, self.content_hash(path), image)

    def flush(self) -> None:
        """Write new memo lines to ``content-index.json`` (merged with what is on disk now)."""
        with self._lock:
            if not self._new_memo:
                return
            new, self._new_memo = self._new_memo, {}
        self.root.mkdir(parents=True, exist_ok=True)
        merged = self._read_index()
        merged.update(new)
        _atomic_write_text(self.root / self.INDEX, json.dumps({"version": 1, "entries": merged}))

    # -- internals ------------------------------------------------------------------------
    def _config_dir(self, cfg: FeatureConfig) -> str:
        d = self._config_dirs.get(cfg)
        if d is None:
            d = os.path.join(self.root, self.config_key(cfg))
            info = os.path.join(d, "config.json")
            if not os.path.exists(info):
                os.makedirs(d, exist_ok=True)
                _atomic_write_text(Path(info), json.dumps(
                    {"feature_version": FEATURE_VERSION, "config": extraction_settings(cfg)},
                    indent=2))
            self._config_dirs[cfg] = d
        return d

    def _entry_file(self, cfg: FeatureConfig, content_hash: str) -> str:
        return os.path.join(self._config_dir(cfg), content_hash[:2], content_hash + ".npy")

    def _read_index(self) -> dict[str, list]:
        try:
            data = json.loads((self.root / self.INDEX).read_text())
            entries = data.get("entries", {}) if data.get("version") == 1 else {}
            return entries if isinstance(entries, dict) else {}
        except (OSError, ValueError):
            return {}

    def _load_memo(self) -> dict[str, list]:
        if self._memo is None:
            with self._lock:
                if self._memo is None:
                    self._memo = self._read_index()
        return self._memo


@functools.lru_cache(maxsize=None)
def _npy_header(shape: tuple[int, ...]) -> bytes:
    """The exact bytes ``np.save`` writes before the data of a float32 array of ``shape``."""
    buf = io.BytesIO()
    np.save(buf, np.zeros(shape, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()[: -4 * int(np.prod(shape))]


def _hash_file(path: str | PathLike[str]) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# ---------------------------------------------------------------------------------------------
# The pipeline
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


def extraction_settings(cfg: FeatureConfig) -> dict[str, Any]:
    """The fields of ``cfg`` that decide the cached image (all but ``normalization``)."""
    d = to_dict(cfg)
    d.pop("normalization", None)
    return d


# ---------------------------------------------------------------------------------------------
# Normalisation
class Normalizer:
    """Per-coefficient standardisation: ``(x - mean[c]) / std[c]`` for MFCC coefficient ``c``.

    Fit it on the **training** utterances of a fold only, e.g.
    ``norm = Normalizer.fit(features[fold.train])``, then apply it to every split with
    ``norm(x)``: statistics from validation or test speakers would leak into the model.
    Mean and standard deviation are taken over utterances and frames (computed in float64);
    a coefficient with (near) zero spread is divided by ``eps`` instead of zero.

    ``state_dict()`` / ``load_state_dict()`` / ``from_state_dict()`` carry it in checkpoints
    (plain tensors and floats: loadable with ``torch.load(weights_only=True)``).
    """

    def __init__(self, mean: Tensor, std: Tensor, eps: float = 1e-5) -> None:
        mean = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std = torch.as_tensor(std, dtype=torch.float32).flatten()
        if mean.shape != std.shape:
            raise ValueError(f"Normalizer: mean {tuple(mean.shape)} and std {tuple(std.shape)} differ")
        self.mean, self.std, self.eps = mean, std, float(eps)

    @classmethod
    def fit(cls, features: Tensor | np.ndarray, eps: float = 1e-5) -> "Normalizer":
        """Statistics of ``features``: ``(N, n_mfcc, n_frames)`` (or ``(N, 1, n_mfcc, n_frames)``)."""
        x = torch.as_tensor(features)
        if x.ndim == 4 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 3:
            raise ValueError(f"Normalizer.fit: expected (N, n_mfcc, n_frames), got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError("Normalizer.fit: no training utterances (empty features)")
        x = x.to(torch.float64)
        mean = x.mean(dim=(0, 2))
        std = x.std(dim=(0, 2), unbiased=False).clamp_min(eps)
        return cls(mean, std, eps)

    @property
    def n_coefficients(self) -> int:
        return int(self.mean.numel())

    def __call__(self, x: Tensor) -> Tensor:
        """Standardise ``x`` of shape ``(..., n_mfcc, n_frames)``; returns float32 on ``x``'s device."""
        if x.shape[-2] != self.n_coefficients:
            raise ValueError(f"Normalizer: x has {x.shape[-2]} coefficients on axis -2, "
                             f"fitted on {self.n_coefficients}")
        mean = self.mean.to(x.device)[:, None]
        std = self.std.to(x.device)[:, None]
        return (x.to(torch.float32) - mean) / std

    transform = __call__

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.clone(), "std": self.std.clone(), "eps": self.eps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        other = Normalizer.from_state_dict(state)
        self.mean, self.std, self.eps = other.mean, other.std, other.eps

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "Normalizer":
        missing = {"mean", "std"} - set(state)
        if missing:
            raise KeyError(f"Normalizer state lacks {sorted(missing)}")
        return cls(state["mean"], state["std"], state.get("eps", 1e-5))


def normalize_per_speaker(features: Tensor, speakers: Sequence[str], eps: float = 1e-5) -> Tensor:
    """Standardise each speaker's utterances by that speaker's own per-coefficient statistics.

    ``features`` is ``(N, n_mfcc, n_frames)`` and ``speakers[i]`` names the speaker of row ``i``.
    Within each speaker the mean and spread are taken over their utterances and frames, exactly as
    :meth:`Normalizer.fit` does for a whole training side. This removes what is constant in a
    voice and a recording set-up (vocal tract, microphone) and keeps what varies between a
    speaker's utterances. It uses audio only, never labels, so a test speaker's statistics may
    come from their own (unlabelled) test utterances; the price is that a new speaker needs a
    few utterances before their first prediction. Returns float32.
    """
    x = torch.as_tensor(features)
    if x.ndim != 3:
        raise ValueError(f"normalize_per_speaker: expected (N, n_mfcc, n_frames), got {tuple(x.shape)}")
    if len(speakers) != x.shape[0]:
        raise ValueError(f"normalize_per_speaker: {len(speakers)} speaker names for {x.shape[0]} utterances")
    rows: dict[str, list[int]] = {}
    for i, s in enumerate(speakers):
        rows.setdefault(str(s), []).append(i)
    out = torch.empty(x.shape, dtype=torch.float32)
    for idx in rows.values():
        out[idx] = Normalizer.fit(x[idx], eps)(x[idx])
    return out


def speaker_step(features: Tensor, speakers: Sequence[str], cfg: FeatureConfig,
                 corpora: Sequence[str] | None = None) -> Tensor:
    """The first normalisation step ``cfg.normalization`` asks for: per speaker, per corpus
    (``corpora[i]`` names the corpus of row ``i``; the grouping of :func:`normalize_per_speaker`
    with corpus names in place of speakers), or none."""
    if cfg.normalization == "speaker":
        return normalize_per_speaker(features, speakers)
    if cfg.normalization == "corpus":
        if corpora is None:
            raise ValueError("speaker_step: normalization='corpus' needs the corpus of every row")
        return normalize_per_speaker(features, corpora)
    return features
