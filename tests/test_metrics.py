import numpy as np
import pytest

from emodarts_core.train.metrics import confusion, evaluate_predictions, per_class_recall, ua, wa


def test_hand_computed_case():
    # 3 classes; true counts 4 / 2 / 1
    y_true = [0, 0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 0, 1, 1, 0, 2]
    assert wa(y_true, y_pred) == pytest.approx(5 / 7)
    # recalls 3/4, 1/2, 1/1 -> UA = 0.75
    assert ua(y_true, y_pred, 3) == pytest.approx((0.75 + 0.5 + 1.0) / 3)
    assert confusion(y_true, y_pred, 3).tolist() == [[3, 1, 0], [1, 1, 0], [0, 0, 1]]


def test_class_absent_from_predictions_counts_as_zero_recall():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 0, 1, 1, 1, 0]          # class 2 never predicted
    recall = per_class_recall(y_true, y_pred, 3)
    assert recall.tolist() == [1.0, 1.0, 0.0]
    assert ua(y_true, y_pred, 3) == pytest.approx(2 / 3)
    assert wa(y_true, y_pred) == pytest.approx(4 / 6)


def test_class_absent_from_truth_is_left_out_of_ua():
    y_true = [0, 0, 1]
    y_pred = [0, 2, 1]                   # class 2 has no test utterances
    m = evaluate_predictions(y_true, y_pred, ["a", "b", "c"])
    assert m.per_class_recall == {"a": 0.5, "b": 1.0, "c": None}
    assert m.ua == pytest.approx(0.75)
    assert m.n == 3 and m.confusion[0] == [1, 0, 1]


def test_ua_differs_from_wa_on_imbalanced_data():
    y_true = np.array([0] * 90 + [1] * 10)
    y_pred = np.zeros(100, dtype=int)    # always the majority class
    assert wa(y_true, y_pred) == pytest.approx(0.9)
    assert ua(y_true, y_pred, 2) == pytest.approx(0.5)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="outside"):
        confusion([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="entries"):
        wa([0, 1], [0])
    with pytest.raises(ValueError, match="empty"):
        wa([], [])
