"""From a corpus on disk to normalised tensors for one fold, and the batches the loops draw.

The chain is ``load_corpus`` -> ``make_folds`` -> ``extract_features`` (cached) -> (with
``FeatureConfig.normalization="speaker"``, each speaker standardised by their own statistics;
with ``"corpus"``, each corpus by its own) -> a ``Normalizer`` fitted on the fold's training side
only -> :class:`FoldData`. Several corpora at once (``corpus="ravdess,emodb"``, one root each)
are combined over their shared classes (:func:`combine_corpora`), with folds that are speaker
independent within every corpus. MFCC images are small
(the paper's 128 x 128 float32 is 64 KiB per utterance), so a fold lives in memory as tensors and
batching is a seeded index permutation: no DataLoader, no worker processes, and an exact resume
only needs the state of one ``torch.Generator``.

For a search, the training side is split once more, by a seeded generator, into the part that
trains the weights ``w`` and the part that trains the architecture ``alpha``
(``SearchConfig.weight_fraction``, default 0.5 as in DARTS; the public emoDARTS code used 0.2).
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from emodarts_core.common.locks import exclusive
from emodarts_core.config import FeatureConfig
from emodarts_core.data.audio import AudioError, audio_info
from emodarts_core.data.corpora import load_corpus
from emodarts_core.data.corpora.generated import generate_corpus
from emodarts_core.data.corpora.record import Corpus, LoadReport
from emodarts_core.data.emotions import canonical_order
from emodarts_core.data.feature_cache import FeatureCache
from emodarts_core.data.features import extract_features
from emodarts_core.data.folds import make_folds
from emodarts_core.data.normalization import Normalizer, speaker_step


class DataError(ValueError):
    """A problem with the data the user asked for (unknown corpus, missing root, bad fold)."""


GENERATED = "generated"


def default_cache_dir() -> Path:
    """``$EMODARTS_CACHE`` or ``~/.cache/emodarts`` (features, generated corpora)."""
    return Path(os.environ.get("EMODARTS_CACHE", Path.home() / ".cache" / "emodarts"))


@dataclass
class FoldData:
    """One fold as tensors: ``x_*`` are ``(N, 1, n_mfcc, n_frames)`` float32, ``y_*`` int64."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_valid: torch.Tensor
    y_valid: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...]
    speakers_train: list[str]
    speakers_valid: list[str]
    speakers_test: list[str]
    fold_name: str = ""
    n_folds: int = 1
    report: LoadReport = field(default_factory=LoadReport)
    test_ids: list[str] = field(default_factory=list)
    norm_stats: dict[str, Any] | None = None   # Normalizer.state_dict() of the training side
    n_files: int = 0                           # corpus entries looked at (kept + skipped)
    valid_speaker_of: list[str] = field(default_factory=list)   # each validation utterance's

    @property
    def input_shape(self) -> tuple[int, int]:
        return (int(self.x_train.shape[-2]), int(self.x_train.shape[-1]))

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def class_weights(self) -> torch.Tensor:
        """Inverse-frequency weights on the training side (:func:`class_weights`)."""
        return class_weights(self.y_train, self.n_classes)

    def summary(self) -> dict[str, Any]:
        return {"fold": self.fold_name, "n_folds": self.n_folds, "classes": list(self.classes),
                "n_train": len(self.y_train), "n_valid": len(self.y_valid),
                "n_test": len(self.y_test), "input_shape": list(self.input_shape),
                "speakers_test": self.speakers_test, "skipped": len(self.report)}


def class_weights(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights of the labels ``y``, mean 1 over the present classes (0 for a
    class absent from ``y``)."""
    counts = torch.bincount(y, minlength=n_classes).float()
    w = torch.where(counts > 0, counts.sum() / counts.clamp(min=1), torch.zeros_like(counts))
    present = counts > 0
    return w / w[present].mean()


def _resolve_root(corpus: str, root: str | Path | None) -> Path:
    if root is None:
        if corpus != GENERATED:
            raise DataError(f"corpus {corpus!r} needs a data root (--data-root)")
        root = default_cache_dir() / "generated"
    root = Path(root).expanduser()
    if corpus == GENERATED:
        ensure_generated(root)
    elif not root.exists():
        raise DataError(f"data root {root} for corpus {corpus!r} does not exist")
    return root


def _missing_or_empty(root: Path) -> bool:
    return not root.exists() or (root.is_dir() and not any(root.iterdir()))


def ensure_generated(root: Path) -> None:
    """Write the generated corpus at ``root`` when ``root`` is missing or empty, once, however
    many processes ask at the same time: under a lock beside ``root``, into a temporary sibling
    folder renamed to ``root`` when complete. A job that finds another one generating waits for
    it and then reads its corpus; an interrupted generation leaves no half corpus at ``root``."""


    if not _missing_or_empty(root):
        return
    root.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(root.parent / f".{root.name}.generate.lock"):
        if not _missing_or_empty(root):          # another process made it while we waited
            return
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
        try:
            generate_corpus(tmp, seed=0)
            if root.exists():
                root.rmdir()                     # empty, checked above under the lock
            os.replace(tmp, root)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def corpus_names(corpus: str) -> list[str]:
    """The corpora a corpus argument names: ``"ravdess,emodb"`` -> ``["ravdess", "emodb"]``."""
    names = [n.strip() for n in str(corpus).split(",")]
    if not all(names):
        raise DataError(f"corpus {corpus!r}: an empty name in the comma-separated list")
    if len(set(names)) != len(names):
        raise DataError(f"corpus {corpus!r} names a corpus twice")
    return names


def split_roots(root: str | Path | Sequence[str | Path] | None, n: int) -> list[Any]:
    """``n`` data roots from one root, a sequence, or one string of roots joined by
    ``os.pathsep`` (how a run's ``config.json`` keeps the roots of several corpora)."""
    if isinstance(root, (list, tuple)):
        roots = list(root)
    elif n > 1 and root is not None:
        roots = str(root).split(os.pathsep)
    else:
        roots = [root]
    if len(roots) != n:
        raise DataError(f"{n} corpora need {n} data roots, one each, in order (--data-root); "
                        f"got {len(roots) if root is not None else 0}")
    return roots


def join_roots(roots: Sequence[str | Path]) -> str:
    """The one string :func:`split_roots` reads back (absolute paths joined by ``os.pathsep``)."""
    for r in roots:
        if os.pathsep in str(r):
            raise DataError(f"data root {str(r)!r} contains {os.pathsep!r}, which separates the "
                            "roots of several corpora")
    return os.pathsep.join(str(r) for r in roots)


def load_records(corpus: str, root: str | Path | Sequence[str | Path] | None,
                 protocol: str | None = None, skip_bad: bool = False):
    """The corpus (``generated`` is created under ``root`` when absent); errors as DataError.
    ``skip_bad`` skips (and reports in ``corpus.report``) entries the loader cannot use.

    ``corpus`` may name several corpora, ``"ravdess,emodb"``, with one root each (a sequence, or
    one ``os.pathsep``-joined string): they are loaded in that order and combined over their
    shared classes by :func:`combine_corpora`.
    """

    names = corpus_names(corpus)
    roots = split_roots(root, len(names))
    parts = []
    for name, part_root in zip(names, roots):
        part_root = _resolve_root(name, part_root)
        try:
            parts.append(load_corpus(name, part_root, protocol=protocol or "standard",
                                     skip_bad=skip_bad))
        except (KeyError, ValueError, FileNotFoundError, NotADirectoryError) as e:
            raise DataError(f"cannot load corpus {name!r} from {part_root}: {_msg(e)}") from e
    return parts[0] if len(parts) == 1 else combine_corpora(parts)


def combine_corpora(parts: Sequence[Any]):
    """One :class:`~emodarts_core.data.corpora.record.Corpus` from several, over the classes all of them
    have (in canonical order); utterances of other classes are left out.

    Speakers and utterance ids are prefixed with their corpus (``"emodb:03"``), so they stay
    unique; ``Utterance.corpus`` keeps each record's own corpus, which the folds
    (:func:`emodarts_core.data.folds.make_folds`) and ``normalization="corpus"`` read. The result's
    name is the comma-joined names. Raises DataError when the corpora share no class.
    """


    shared = canonical_order(set.intersection(*(set(p.classes) for p in parts)))
    if not shared:
        have = "; ".join(f"{p.name}: {', '.join(p.classes)}" for p in parts)
        raise DataError(f"corpora {', '.join(p.name for p in parts)} share no emotion class ({have})")
    records, report = [], LoadReport()
    for p in parts:
        report.skipped.extend(p.report.skipped)
        report.notes.extend(p.report.notes)
        records += [dataclasses.replace(r, speaker=f"{p.name}:{r.speaker}",
                                        utt_id=f"{p.name}:{r.utt_id}")
                    for r in p.records if r.label in shared]
    return Corpus(name=",".join(p.name for p in parts), records=records, classes=shared,
                  report=report)


def _msg(e: BaseException) -> str:
    return str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)


#: A kept file with less audio than this is noted in the data report (it is mostly padding).
SHORT_AUDIO_S = 0.1


def features_for(records, features: FeatureConfig, cache_dir: str | Path | None,
                 progress: bool = False, report: LoadReport | None = None):
    """Features ``(N_kept, n_mfcc, n_frames)`` for ``records`` and the kept positions.

    Files that cannot be used (undecodable, empty, silent, NaN samples) are skipped and listed
    in ``report``; files under :data:`SHORT_AUDIO_S` seconds are kept, padded, and noted there,
    as are damaged cache entries (computed again). The cache lives in ``cache_dir`` (default
    ``<default_cache_dir()>/features``); one process at a time fills it for a feature
    configuration, so concurrent jobs compute each file once and the later ones read it.
    """

    report = LoadReport() if report is None else report
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "features"
    with exclusive(cache / f".{FeatureCache.config_key(features)}.lock"):
        out = extract_features(records, features, cache_dir=cache, skip_bad=True, report=report,
                               progress=progress)
    kept = [int(i) for i in out.kept]
    for i in kept:
        path = getattr(records[i], "path", records[i])
        try:
            info = audio_info(path)
        except AudioError:
            continue
        seconds = info.frames / max(1, info.samplerate)
        if seconds < SHORT_AUDIO_S:
            report.note(path, f"only {seconds:.3f} s of audio, padded with silence to "
                              f"{features.duration_s:g} s")
    return out.tensor.to(torch.float32), kept


def load_fold_data(corpus: str, root: str | Path | None, features: FeatureConfig,
                   protocol: str | None = None, fold: int = 0,
                   cache_dir: str | Path | None = None, progress: bool = False,
                   skip_bad: bool = False) -> FoldData:
    """Load, split, featurise and normalise one fold (see the module docstring); ``skip_bad``
    skips corpus entries the loader cannot use instead of stopping (all in ``report``)."""

    crp = load_records(corpus, root, protocol, skip_bad=skip_bad)
    n_entries = len(crp.records) + len(crp.report)
    try:
        folds = make_folds(crp, protocol=protocol or "standard")
    except ValueError as e:
        raise DataError(f"cannot split corpus {corpus!r} into folds: {e}") from e
    if not 0 <= fold < len(folds):
        raise DataError(f"fold {fold} is out of range: corpus {corpus!r} has {len(folds)} "
                        f"fold(s) (0..{len(folds) - 1})")
    f = folds[fold]
    feats, kept = features_for(crp.records, features, cache_dir, progress, crp.report)
    feats = speaker_step(feats, [crp.records[i].speaker for i in kept], features,
                         corpora=[crp.records[i].corpus for i in kept])
    # map corpus index -> row in feats (a record whose audio was skipped has no row)
    row = {idx: r for r, idx in enumerate(kept)}
    labels = torch.tensor(crp.label_indices(), dtype=torch.int64)

    def rows(indices) -> list[int]:
        return [int(i) for i in indices if int(i) in row]

    tr, va, te = rows(f.train), rows(f.valid), rows(f.test)
    if not tr:
        raise DataError(f"fold {fold} of corpus {corpus!r} has no training utterances")
    norm = Normalizer.fit(feats[[row[i] for i in tr]])

    def take(idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        x = feats[[row[i] for i in idx]] if idx else feats[:0]
        return norm(x).unsqueeze(1).contiguous(), labels[idx] if idx else labels[:0]

    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = take(tr), take(va), take(te)
    spk = lambda idx: sorted({crp.records[i].speaker for i in idx})  # noqa: E731
    return FoldData(
        x_train=x_tr, y_train=y_tr, x_valid=x_va, y_valid=y_va, x_test=x_te, y_test=y_te,
        classes=tuple(crp.classes), speakers_train=spk(tr), speakers_valid=spk(va),
        speakers_test=spk(te), fold_name=str(getattr(f, "name", fold)), n_folds=len(folds),
        report=crp.report, test_ids=[crp.records[i].utt_id for i in te],
        norm_stats=norm.state_dict(), n_files=n_entries,
        valid_speaker_of=[crp.records[i].speaker for i in va],
    )


def split_search(x: torch.Tensor, y: torch.Tensor, weight_fraction: float, seed: int):
    """Split the search data into the ``w`` part and the ``alpha`` part by a seeded permutation.

    Returns ``(x_w, y_w, x_alpha, y_alpha)``; each part keeps at least one utterance.
    """
    if not 0.0 < weight_fraction < 1.0:
        raise ValueError(f"SearchConfig.weight_fraction must lie in (0, 1), got {weight_fraction}")
    n = len(y)
    if n < 2:
        raise DataError(f"a search needs at least 2 training utterances, got {n}")
    g = torch.Generator().manual_seed(int(seed) + 7919)
    perm = torch.randperm(n, generator=g)
    n_w = min(max(1, int(round(weight_fraction * n))), n - 1)
    w, a = perm[:n_w].sort().values, perm[n_w:].sort().values
    return x[w], y[w], x[a], y[a]


def batch_indices(n: int, batch_size: int, generator: torch.Generator | None = None,
                  shuffle: bool = True) -> list[torch.Tensor]:
    """Index batches over ``n`` items; a trailing batch of one item joins the previous batch
    (BatchNorm cannot train on a single example)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    chunks = list(order.split(batch_size))
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        last = chunks.pop()
        chunks[-1] = torch.cat([chunks[-1], last])
    return chunks
