"""Objective memory: sliding exposure windows, recent items per user, bounds."""

import numpy as np

from online.objectives import ExposureWindow, ObjectiveMemory, ObjectiveSettings
from online.objectives.memory import RecentItems


def test_window_counts_expire_bucket_by_bucket() -> None:
    window = ExposureWindow(window_s=100.0, n_buckets=4)  # buckets of 25 s
    window.add(np.array([0, 0, 3]), np.array([0.0, 10.0, 30.0]))
    np.testing.assert_array_equal(window.counts(np.array([0, 3, 7])), [2, 1, 0])
    window.add(np.array([3]), np.array([99.0]))  # bucket 3: buckets 0..3 still live
    np.testing.assert_array_equal(window.counts(np.array([0, 3])), [2, 2])
    window.add(np.array([5]), np.array([100.0]))  # bucket 4: bucket 0 (item 0's events) expires
    np.testing.assert_array_equal(window.counts(np.array([0, 3, 5])), [0, 2, 1])
    window.add(np.array([1]), np.array([10.0]))  # older than the window: ignored
    assert window.total == 3
    window.add(np.array([2]), np.array([1000.0]))  # far ahead: everything before expires
    assert window.total == 1


def test_recent_items_keep_the_last_capacity_entries() -> None:
    recent = RecentItems(capacity=3)
    recent.add(np.array([1, 2, 3, 4]), np.array([1.0, 2.0, 3.0, 4.0]))
    assert recent.latest().tolist() == [4, 3, 2]
    assert recent.since(3.0).tolist() == [3, 4]
    recent.add(np.array([2]), np.array([5.0]))
    assert recent.latest().tolist() == [2, 4, 3]


def test_memory_bounds_users_and_splits_shown_from_clicked() -> None:
    memory = ObjectiveMemory(ObjectiveSettings(max_users=2, recent_clicked_per_user=1))
    memory.observe(["a", "a", "a", "b", "c"], ["feed"] * 5, np.array([1, 2, 2, 3, 4]),
                   np.array([1.0, 1.0, 0.0, 1.0, 1.0]), np.array([0.0, 0.0, 1.0, 2.0, 3.0]))
    assert list(memory.users) == ["a", "b", "c"]  # a batch's users all stay while it is folded in
    memory.observe(["b", "b"], ["feed", "feed"], np.array([3, 5]), np.array([0.0, 0.0]), np.array([4.0, 5.0]))
    assert list(memory.users) == ["c", "b"]  # then "a", least recently active, goes
    user = memory.user("b")
    assert user is not None and user.clicked.latest().tolist() == [5] and user.shown.latest().tolist() == [3]
    np.testing.assert_array_equal(memory.item_exposure.counts(np.array([1, 2, 3, 4, 5])), [1, 1, 1, 1, 0])
    np.testing.assert_array_equal(memory.scenario_click_counts("feed", np.array([2, 3, 5])), [1, 1, 1])
    memory.forget("b")
    assert memory.user("b") is None
