"""average_map, last_map and forgetting on hand-made histories."""

import numpy as np
import pytest

from mlcil.errors import MlcilError
from mlcil.metrics import average_map, forgetting, last_map

nan = np.nan


def test_average_and_last():
    maps = [0.9, 0.75, 0.6]
    assert average_map(maps) == pytest.approx(0.75)
    assert last_map(maps) == 0.6
    assert average_map(np.array([0.5])) == 0.5
    assert last_map((0.5,)) == 0.5
    assert isinstance(average_map(maps), float) and isinstance(last_map(maps), float)


def test_average_propagates_nan():
    assert np.isnan(average_map([0.9, nan, 0.5]))
    assert last_map([nan, 0.4]) == 0.4


@pytest.mark.parametrize("fn", [average_map, last_map])
def test_map_errors(fn):
    with pytest.raises(MlcilError, match=r"^maps: expected at least one value, got an empty sequence$"):
        fn([])
    with pytest.raises(MlcilError, match=r"^maps: expected fractions in \[0, 1\] or NaN \(not percent\), got 72.2 at \[1\]$"):
        fn([0.5, 72.2])
    with pytest.raises(MlcilError, match=r"^maps: expected fractions"):
        fn([0.5, np.inf])
    with pytest.raises(MlcilError, match=r"^maps: expected a 1-D sequence of per-session values, got shape \(2, 2\)$"):
        fn([[0.5, 0.4], [0.3, 0.2]])


def test_forgetting_basic():
    history = np.array([
        [0.9, 0.8, nan, nan],
        [0.7, 0.9, 0.5, nan],
        [0.6, 0.9, 0.7, 0.4],
    ])
    # class 0: 0.9 - 0.6 = 0.3; class 1: 0.9 - 0.9 = 0; class 2: 0.5 - 0.7 = -0.2; class 3 new.
    expected = (0.3 + 0.0 - 0.2) / 3
    assert forgetting(history, [3]) == pytest.approx(expected)
    assert forgetting(history, np.array([False, False, False, True])) == pytest.approx(expected)
    assert forgetting(history, np.array([3], dtype=np.uint8)) == pytest.approx(expected)


def test_forgetting_can_be_negative():
    history = np.array([[0.5, 0.6, nan], [0.7, 0.9, 0.3]])
    assert forgetting(history, [2]) == pytest.approx(-0.25)


def test_forgetting_zero_when_old_classes_unchanged():
    history = np.array([[0.8, 0.6, nan, nan], [0.8, 0.6, 0.7, nan], [0.8, 0.6, 0.7, 0.9]])
    assert forgetting(history, [3]) == 0.0


def test_forgetting_excludes_class_never_seen_before_last():
    # class 2 has no finite value before T although it is not flagged as last-session
    # (e.g. its AP was undefined until then): excluded rather than counted as 0.
    history = np.array([[0.9, nan, nan], [0.8, nan, nan], [0.5, 0.3, 0.6]])
    assert forgetting(history, [1]) == pytest.approx(0.4)
    # with no last-session classes at all, class 1 and 2 still have nothing before T
    assert forgetting(history, []) == pytest.approx(0.4)


def test_forgetting_ignores_nan_in_past_and_excludes_nan_final():
    history = np.array([
        [0.9, nan, 0.4],
        [nan, 0.7, 0.6],
        [0.8, 0.5, nan],  # class 2 forgotten / undefined at T: excluded
    ])
    assert forgetting(history, []) == pytest.approx((0.1 + 0.2) / 2)


def test_forgetting_nan_cases():
    assert np.isnan(forgetting(np.array([[0.5, 0.6]]), [0, 1]))  # T = 1
    assert np.isnan(forgetting(np.array([[0.5, 0.6]]), []))  # T = 1 even with old classes
    assert np.isnan(forgetting(np.array([[0.5, nan], [0.6, 0.7]]), [0, 1]))  # all classes new
    assert np.isnan(forgetting(np.array([[nan, nan], [0.6, 0.7]]), []))  # nothing seen before


def test_forgetting_errors():
    h = np.array([[0.5, 0.6], [0.4, 0.7]])
    with pytest.raises(MlcilError, match=r"^ap_history: expected a 2-D array of shape \(n_sessions >= 1, n_classes\), got shape \(2,\)$"):
        forgetting(np.array([0.5, 0.6]), [])
    with pytest.raises(MlcilError, match=r"^ap_history: expected a 2-D array"):
        forgetting(np.zeros((0, 3)), [])
    with pytest.raises(MlcilError, match=r"^ap_history: expected fractions in \[0, 1\] or NaN \(not percent\), got 55.0 at \[1, 0\]$"):
        forgetting(np.array([[0.5, 0.6], [55.0, 0.7]]), [])
    with pytest.raises(MlcilError, match=r"^last_classes: expected class indices in \[0, 2\), got \[2\]$"):
        forgetting(h, [2])
    with pytest.raises(MlcilError, match=r"^last_classes: expected class indices in \[0, 2\), got \[-1\]$"):
        forgetting(h, [-1])
    with pytest.raises(MlcilError, match=r"^last_classes: expected a boolean mask of shape \(2,\) or integer class indices, got a boolean array of shape \(3,\)$"):
        forgetting(h, [True, False, True])
    with pytest.raises(MlcilError, match=r"^last_classes: expected a boolean mask of shape \(2,\) or a 1-D array of integer class indices, got dtype float64"):
        forgetting(h, [0.5])
