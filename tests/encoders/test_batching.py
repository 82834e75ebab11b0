import numpy as np
import pytest

from encoders.batching import l2_normalise, length_buckets, pad_batch
from encoders.models import Pooling, default_model_dir, read_pooling


def test_buckets_cover_every_position_once_longest_first() -> None:
    lengths = [3, 9, 1, 9, 4, 7, 2]
    buckets = length_buckets(lengths, 3)
    flat = np.concatenate(buckets)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    assert all(len(b) <= 3 for b in buckets)
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)


def test_pad_batch_right_pads_with_mask() -> None:
    ids, mask = pad_batch([[1, 2, 3], [4], [5, 6]], np.array([1, 0]), pad_id=0)
    np.testing.assert_array_equal(ids, [[4, 0, 0], [1, 2, 3]])
    np.testing.assert_array_equal(mask, [[1, 0, 0], [1, 1, 1]])
    assert ids.dtype == np.int64 and mask.dtype == np.int64


def test_bad_batch_size_and_normalise() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        length_buckets([1], 0)
    out = l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])


def test_pooling_read_from_sentence_transformers_config(tmp_path) -> None:
    pooling = read_pooling(default_model_dir())
    assert pooling.mode == "mean" and pooling.source.endswith("config.json")
    assert read_pooling(tmp_path) == Pooling()
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}')
    assert read_pooling(tmp_path).mode == "cls"
    (tmp_path / "1_Pooling" / "config.json").write_text(
        '{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": true}'
    )
    with pytest.raises(ValueError, match="exactly one"):
        read_pooling(tmp_path)
    with pytest.raises(ValueError, match="pooling mode"):
        Pooling(mode="weird")
