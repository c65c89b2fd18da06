"""Speaker-independent folds: which utterances train, select and test a model.

A :class:`Fold` holds three lists of indices into ``corpus.records``. In every scheme:

- no speaker appears in two of ``train`` / ``valid`` / ``test``;
- ``valid`` is a set of *whole speakers taken from the training side* (never a test speaker), so
  choosing an epoch or an architecture on it never looks at the test fold. (The emoDARTS public
  code selected on the test fold; see the book's evaluation chapter.) MSP-Podcast's ``"official"``
  scheme uses the corpus's own Development split, which the corpus keeps apart from Train and Test.

Schemes (``scheme=None`` picks :func:`default_scheme` for the corpus and protocol):

- ``"loso"``: leave one session out (IEMOCAP: 5 folds, MSP-IMPROV: 6 folds). Needs sessions.
- ``"emodarts_pairs"`` (IEMOCAP, paper protocol): fold k tests session k's male and session
  k+1's female speaker (fold 5: 5M and 1F), as the emoDARTS code does.
- ``"emodarts_sessions"`` (MSP-IMPROV, paper protocol): 4 folds testing sessions 1, 2, 3 and 5.
- ``"official"`` (MSP-Podcast, standard): one fold, Train / Development / Test1 (+ Test2 with
  ``include_test2=True``, the default).
- ``"emodarts_packing"`` (MSP-Podcast, paper): speakers sorted by id *as strings* and packed
  greedily, in that order, into 5 groups of about ``len / 5`` utterances; fold k tests group
  ``5 - k`` (0-based groups, so fold 1 tests the last group).
- ``"speaker_groups"`` (RAVDESS, CREMA-D, EmoDB, generated; works for any corpus): speakers sorted
  and dealt into ``n_folds`` groups, balanced by gender where possible; fold k tests group k.
  ``n_folds`` equal to the number of speakers gives leave-one-speaker-out.

Several corpora in one :class:`Corpus` (records of more than one ``Utterance.corpus``, as
:func:`emodarts_core.data.datasets.combine_corpora` builds) get joint folds: fold k joins fold k of
every corpus, each made by that corpus's own scheme, so every fold is speaker independent within
every corpus (see ``_joint``).

Validation speakers: ``valid_speakers`` of them (default: an eighth of the training-side
speakers, at least 1), chosen with a seeded generator alternately from the genders present, so
the choice is repeatable and does not depend on the order of records.
"""
from __future__ import annotations

import random
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

from emodarts_core.data.corpora.record import Corpus

SCHEMES = ("loso", "emodarts_pairs", "emodarts_sessions", "official", "emodarts_packing",
           "speaker_groups")

#: Default number of folds for ``"speaker_groups"`` per corpus (others: 5, capped by speakers).
DEFAULT_N_FOLDS = {"ravdess": 6, "crema_d": 5, "emodb": 5, "generated": 4}


@dataclass(frozen=True)
class Fold:
    """One split: indices into ``corpus.records`` for training, validation and test."""

    name: str
    train: list[int]
    valid: list[int]
    test: list[int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def speakers(self, corpus: Corpus) -> dict[str, list[str]]:
        """The sorted speakers of each part (for reports and checks)."""
        return {part: sorted({corpus.records[i].speaker for i in getattr(self, part)})
                for part in ("train", "valid", "test")}


def default_scheme(corpus_name: str, protocol: str = "standard") -> str:
    """The scheme a corpus and protocol use unless told otherwise."""
    paper = protocol == "paper"
    if corpus_name == "iemocap":
        return "emodarts_pairs" if paper else "loso"
    if corpus_name == "msp_improv":
        return "emodarts_sessions" if paper else "loso"
    if corpus_name == "msp_podcast":
        return "emodarts_packing" if paper else "official"
    return "speaker_groups"


def make_folds(
    corpus: Corpus,
    scheme: str | None = None,
    *,
    n_folds: int | None = None,
    valid_speakers: int | None = None,
    seed: int = 0,
    protocol: str = "standard",
    include_test2: bool = True,
) -> list[Fold]:
    """Speaker-independent folds for ``corpus`` (see the module docstring for the schemes).

    Raises ``ValueError`` for an unknown scheme, a scheme the corpus cannot support (no sessions,
    missing speakers) or a fold left without training or validation speakers.
    """
    if len({r.corpus for r in corpus.records}) > 1:
        return _joint(corpus, scheme, n_folds=n_folds, valid_speakers=valid_speakers, seed=seed,
                      protocol=protocol, include_test2=include_test2)
    scheme = scheme or default_scheme(corpus.name, protocol)
    if scheme not in SCHEMES:
        raise ValueError(f"make_folds: unknown scheme {scheme!r}; choose one of {SCHEMES}")
    if not corpus.records:
        raise ValueError(f"make_folds: corpus {corpus.name!r} has no records")
    recs = corpus.records
    if scheme == "official":
        return [_official(corpus, include_test2)]

    # Each scheme gives a list of (name, test speakers).
    if scheme == "loso":
        sessions = _sessions(corpus)
        tests = [(f"session{s}", {r.speaker for r in recs if r.session == s}) for s in sessions]
    elif scheme == "emodarts_pairs":
        _require(corpus, "iemocap", scheme)
        tests = []
        for k in range(1, 6):
            pair = {f"{k:02d}M", f"{k % 5 + 1:02d}F"}
            missing = pair - set(corpus.speakers)
            if missing:
                raise ValueError(f"make_folds: emodarts_pairs fold {k} needs speakers {sorted(missing)}, "
                                 "absent from the corpus (load all 5 sessions)")
            tests.append((f"fold{k}", pair))
    elif scheme == "emodarts_sessions":
        _require(corpus, "msp_improv", scheme)
        present = set(_sessions(corpus))
        tests = []
        for s in ("1", "2", "3", "5"):
            if s not in present:
                raise ValueError(f"make_folds: emodarts_sessions needs session {s}, absent from the corpus")
            tests.append((f"session{s}", {r.speaker for r in recs if r.session == s}))
    elif scheme == "emodarts_packing":
        groups = _pack(corpus, n_folds or 5)
        tests = [(f"fold{k}", set(groups[len(groups) - k])) for k in range(1, len(groups) + 1)]
    else:  # speaker_groups
        k = n_folds or min(DEFAULT_N_FOLDS.get(corpus.name, 5), len(corpus.speakers))
        groups = _deal(corpus, k)
        tests = [(f"fold{i + 1}", set(g)) for i, g in enumerate(groups)]

    folds = []
    for i, (name, test_spk) in enumerate(tests):
        train_side = [s for s in corpus.speakers if s not in test_spk]
        valid_spk = _pick_valid(corpus, train_side, valid_speakers, random.Random(f"{seed}/{name}"))
        if len(valid_spk) >= len(train_side):
            raise ValueError(f"make_folds: fold {name} has {len(train_side)} training-side speakers; "
                             f"cannot hold out {len(valid_spk)} for validation")
        folds.append(_split(corpus, name, test_spk, set(valid_spk)))
    return folds


def _joint(corpus: Corpus, scheme: str | None, *, n_folds: int | None, **kw: Any) -> list[Fold]:
    """Folds of a combination of corpora: fold k joins fold k of every corpus, each made by that
    corpus's own scheme (or ``scheme``), so the folds are speaker independent within every
    corpus. The number of folds is ``n_folds`` or the smallest default count among the corpora;
    a ``"speaker_groups"`` corpus is dealt into that many groups, a corpus with a fixed scheme
    (IEMOCAP's sessions ...) contributes its first folds."""
    names = list(dict.fromkeys(r.corpus for r in corpus.records))
    subs = []
    for name in names:
        idx = [i for i, r in enumerate(corpus.records) if r.corpus == name]
        subs.append((idx, Corpus(name=name, records=[corpus.records[i] for i in idx],
                                 classes=corpus.classes)))
    protocol = kw.get("protocol", "standard")

    def grouped(sub: Corpus) -> bool:
        return (scheme or default_scheme(sub.name, protocol)) == "speaker_groups"

    fixed = {sub.name: make_folds(sub, scheme, **kw) for _, sub in subs if not grouped(sub)}
    counts = [len(fixed[sub.name]) if sub.name in fixed
              else min(DEFAULT_N_FOLDS.get(sub.name, 5), len(sub.speakers)) for _, sub in subs]
    k = n_folds or min(counts)
    parts = []
    for idx, sub in subs:
        folds = fixed[sub.name] if sub.name in fixed else make_folds(sub, scheme, n_folds=k, **kw)
        if len(folds) < k:
            raise ValueError(f"make_folds: {sub.name!r} has {len(folds)} folds, fewer than {k}")
        parts.append((idx, folds[:k]))
    out = []
    for j in range(k):
        joined = {part: sorted(idx[i] for idx, folds in parts for i in getattr(folds[j], part))
                  for part in ("train", "valid", "test")}
        name = "+".join(f"{sub.name}:{folds[j].name}" for (_, sub), (_, folds) in zip(subs, parts))
        out.append(Fold(name, joined["train"], joined["valid"], joined["test"]))
    return out


def _require(corpus: Corpus, name: str, scheme: str) -> None:
    if corpus.name != name:
        raise ValueError(f"make_folds: scheme {scheme!r} is for {name}, not {corpus.name!r}")


def _sessions(corpus: Corpus) -> list[str]:
    if any(r.session is None for r in corpus.records):
        raise ValueError(f"make_folds: 'loso' needs sessions; {corpus.name!r} records have none "
                         "(use 'speaker_groups')")
    sessions = sorted({r.session for r in corpus.records}, key=lambda s: (len(s), s))
    owners: dict[str, set[str]] = {}
    for r in corpus.records:
        owners.setdefault(r.speaker, set()).add(r.session)
    shared = [s for s, o in owners.items() if len(o) > 1]
    if shared:
        raise ValueError(f"make_folds: speakers {shared[:3]} occur in several sessions; "
                         "leave-one-session-out would not be speaker-independent")
    return sessions


def _deal(corpus: Corpus, k: int) -> list[list[str]]:
    """Deal sorted speakers into ``k`` groups: females round-robin from group 0, males round-robin
    continuing where the females stopped (fills the groups that got fewer), unknowns likewise."""
    if not 2 <= k <= len(corpus.speakers):
        raise ValueError(f"make_folds: n_folds={k} must be between 2 and the number of speakers "
                         f"({len(corpus.speakers)})")
    gender = _genders(corpus)
    groups: list[list[str]] = [[] for _ in range(k)]
    pos = 0
    for g in ("F", "M", None):
        for spk in (s for s in corpus.speakers if gender[s] == g):
            groups[pos % k].append(spk)
            pos += 1
    return [sorted(g) for g in groups]


def _pack(corpus: Corpus, k: int) -> list[list[str]]:
    counts: dict[str, int] = {}
    for r in corpus.records:
        counts[r.speaker] = counts.get(r.speaker, 0) + 1
    if len(counts) < k:
        raise ValueError(f"make_folds: {len(counts)} speakers cannot fill {k} groups")
    target = len(corpus.records) / k
    groups: list[list[str]] = [[] for _ in range(k)]
    g, size = 0, 0
    order = sorted(counts)                      # string order, as the emoDARTS code sorts
    for i, spk in enumerate(order):
        left_speakers, left_groups = len(order) - i, k - g
        if g < k - 1 and groups[g] and (size >= target or left_speakers <= left_groups - 1):
            g, size = g + 1, 0
        groups[g].append(spk)
        size += counts[spk]
    return groups


def _genders(corpus: Corpus) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for r in corpus.records:
        out.setdefault(r.speaker, r.gender if r.gender in ("F", "M") else None)
    return out


def _pick_valid(corpus: Corpus, train_side: Sequence[str], n: int | None, rng: random.Random) -> list[str]:
    if not train_side:
        raise ValueError("make_folds: a fold has no training-side speakers")
    n = max(1, round(len(train_side) / 8)) if n is None else n
    if n < 1:
        raise ValueError(f"make_folds: valid_speakers must be >= 1, got {n}")
    gender = _genders(corpus)
    pools = {}
    for g in ("F", "M", None):
        pool = [s for s in train_side if gender[s] == g]
        rng.shuffle(pool)
        if pool:
            pools[g] = pool
    order = list(pools)
    rng.shuffle(order)
    chosen: list[str] = []
    while len(chosen) < n and any(pools.values()):
        for g in order:
            if pools[g] and len(chosen) < n:
                chosen.append(pools[g].pop())
    return sorted(chosen)


def _split(corpus: Corpus, name: str, test_spk: Iterable[str], valid_spk: set[str]) -> Fold:
    test_set = set(test_spk)
    train, valid, test = [], [], []
    for i, r in enumerate(corpus.records):
        (test if r.speaker in test_set else valid if r.speaker in valid_spk else train).append(i)
    if not test or not train:
        raise ValueError(f"make_folds: fold {name} has an empty {'test' if not test else 'train'} set")
    return Fold(name, train, valid, test)


def _official(corpus: Corpus, include_test2: bool) -> Fold:
    _require(corpus, "msp_podcast", "official")
    parts = {"Train": [], "Development": [], "Test": []}
    tests = {"Test1", "Test2"} if include_test2 else {"Test1"}
    for i, r in enumerate(corpus.records):
        if r.session in ("Train", "Development"):
            parts[r.session].append(i)
        elif r.session in tests:
            parts["Test"].append(i)
    owner: dict[str, set[str]] = {}
    for part, idx in parts.items():
        for i in idx:
            if corpus.records[i].extras.get("speaker_known", True):
                owner.setdefault(corpus.records[i].speaker, set()).add(part)
    crossing = sorted(s for s, p in owner.items() if len(p) > 1)
    if crossing:
        warnings.warn(f"make_folds: official MSP-Podcast splits share speakers {crossing[:5]}",
                      stacklevel=3)
    for part, idx in parts.items():
        if not idx:
            raise ValueError(f"make_folds: official split {part} is empty (load with protocol='standard')")
    return Fold("official", parts["Train"], parts["Development"], parts["Test"])
