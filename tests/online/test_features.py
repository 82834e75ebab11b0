"""Feature maps: item vectors with a bias, and crosses with context for user-less data."""

import numpy as np

from online.features import ContextCrossFeatures, ItemFeatures


def test_item_features_append_bias() -> None:
    vectors = np.array([[0.6, 0.8]], dtype=np.float32)
    np.testing.assert_allclose(ItemFeatures().transform(vectors, {"x": 3.0}), [[0.6, 0.8, 1.0]])
    assert ItemFeatures().dim(2) == 3


def test_context_cross_features_are_outer_products() -> None:
    features = ContextCrossFeatures(keys=("a", "b"))
    vectors = np.array([[1.0, 2.0]], dtype=np.float32)
    out = features.transform(vectors, {"a": 0.5})
    assert out.shape == (1, features.dim(2)) == (1, 9)
    # [v, 1] outer [1, a, b] with b missing (0)
    np.testing.assert_allclose(out[0], [1.0, 0.5, 0.0, 2.0, 1.0, 0.0, 1.0, 0.5, 0.0])


def test_context_changes_the_features_of_the_same_item() -> None:
    features = ContextCrossFeatures(keys=("young",))
    vectors = np.array([[0.3, 0.4]], dtype=np.float32)
    assert not np.allclose(features.transform(vectors, {"young": 1.0}), features.transform(vectors, {"young": 0.0}))
