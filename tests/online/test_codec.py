"""The state codec: round trips, kind/version checks, corruption detection."""

import numpy as np
import pytest

from online.codec import StateCodecError, pack_state, unpack_state


def test_round_trip_keeps_arrays_and_meta() -> None:
    arrays = {"a": np.arange(6, dtype=np.float64).reshape(2, 3), "b": np.array([1, 2], dtype=np.int64)}
    blob = pack_state("thing", 2, {"ids": ["x", "y"]}, arrays)
    decoded = unpack_state(blob, "thing", max_version=2)
    assert decoded.version == 2 and decoded.meta == {"ids": ["x", "y"]}
    for name, array in arrays.items():
        np.testing.assert_array_equal(decoded.arrays[name], array)
        assert decoded.arrays[name].dtype == array.dtype


def test_rejects_wrong_kind_newer_version_and_truncation() -> None:
    blob = pack_state("thing", 2, {}, {"a": np.zeros(4)})
    with pytest.raises(StateCodecError, match="expected 'other'"):
        unpack_state(blob, "other", max_version=2)
    with pytest.raises(StateCodecError, match="newer"):
        unpack_state(blob, "thing", max_version=1)
    with pytest.raises(StateCodecError, match="truncated"):
        unpack_state(blob[:-1], "thing", max_version=2)
    with pytest.raises(StateCodecError, match="not a slatestream"):
        unpack_state(b"garbage", "thing", max_version=2)


def test_refuses_object_arrays() -> None:
    with pytest.raises(StateCodecError, match="cannot be encoded"):
        pack_state("thing", 1, {}, {"a": np.array([object()])})
