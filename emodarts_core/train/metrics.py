"""Metrics of speech emotion recognition, computed once over a whole test set.

- **WA** (weighted accuracy, also WAR) = overall accuracy = correct / total.
- **UA** (unweighted accuracy, also UAR) = the mean of the per-class recalls (balanced accuracy).
  A class that has no test utterances has no recall and is left out of the mean; a class that
  is present but never predicted has recall 0 and pulls UA down.

The public emoDARTS code computes its "weighted accuracy" per batch and averages the batches; we
do not (see the book's method chapter).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np


def _as_int_array(values: Sequence[int] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def confusion(y_true, y_pred, n_classes: int) -> np.ndarray:
    """``C[i, j]`` = number of utterances of true class ``i`` predicted as class ``j``."""
    t = _as_int_array(y_true, "y_true")
    p = _as_int_array(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} entries but y_pred has {p.size}")
    for name, arr in (("y_true", t), ("y_pred", p)):
        if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
            raise ValueError(f"{name} holds a class index outside 0..{n_classes - 1}")
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def confusion_recall(cm: np.ndarray) -> np.ndarray:
    """Recall of each class of a confusion matrix (rows true); ``nan`` for a class with no
    utterance."""
    cm = np.asarray(cm)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)


def confusion_ua(cm: np.ndarray) -> float:
    """UA of a confusion matrix: mean recall over the classes it holds utterances of."""
    recall = confusion_recall(cm)
    if np.all(np.isnan(recall)):
        raise ValueError("cannot compute UA of an empty set")
    return float(np.nanmean(recall))


def per_class_recall(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Recall of each class; ``nan`` for a class absent from ``y_true``."""
    return confusion_recall(confusion(y_true, y_pred, n_classes))


def wa(y_true, y_pred) -> float:
    """Weighted accuracy: correct / total."""
    t = _as_int_array(y_true, "y_true")
    p = _as_int_array(y_pred, "y_pred")
    if t.size == 0:
        raise ValueError("cannot compute accuracy of an empty set")
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} entries but y_pred has {p.size}")
    return float((t == p).mean())


def ua(y_true, y_pred, n_classes: int) -> float:
    """Unweighted accuracy: mean recall over the classes present in ``y_true``."""
    return confusion_ua(confusion(y_true, y_pred, n_classes))


@dataclass
class Metrics:
    wa: float
    ua: float
    confusion: list[list[int]]
    per_class_recall: dict[str, float | None]
    classes: list[str]
    n: int

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"WA {100 * self.wa:.2f} %  UA {100 * self.ua:.2f} %  (n = {self.n})"


def evaluate_predictions(y_true, y_pred, classes: Sequence[str]) -> Metrics:
    """All metrics at once, JSON-ready (absent classes get ``None`` recall)."""
    n_classes = len(classes)
    recall = per_class_recall(y_true, y_pred, n_classes)
    return Metrics(
        wa=wa(y_true, y_pred),
        ua=ua(y_true, y_pred, n_classes),
        confusion=confusion(y_true, y_pred, n_classes).tolist(),
        per_class_recall={c: (None if np.isnan(r) else float(r)) for c, r in zip(classes, recall)},
        classes=list(classes),
        n=int(len(y_true)),
    )
