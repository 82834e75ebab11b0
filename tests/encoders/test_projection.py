import numpy as np
import pytest

from encoders.projection import PcaProjection


def planted(n: int = 500, width: int = 48, seed: int = 0) -> np.ndarray:
    """Data with variance concentrated on a few known axes (scales 10, 5, 2, then noise 0.1)."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(width, width)))
    scales = np.full(width, 0.1)
    scales[:3] = [10.0, 5.0, 2.0]
    return ((rng.normal(size=(n, width)) * scales) @ basis.T + 3.0).astype(np.float32), basis


def test_dims_and_unit_rows() -> None:
    data, _ = planted()
    projection = PcaProjection.fit(data, 8, seed=0)
    out = projection.transform(data[:17])
    assert out.shape == (17, 8) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert projection.dim == 8 and projection.input_dim == 48


def test_components_orthonormal_and_variance_descending() -> None:
    data, basis = planted()
    projection = PcaProjection.fit(data, 10, seed=0)
    gram = projection.components @ projection.components.T
    np.testing.assert_allclose(gram, np.eye(10), atol=1e-5)
    variance = projection.explained_variance
    assert np.all(np.diff(variance) <= 1e-6)
    assert 0.0 < projection.explained_variance_ratio.sum() <= 1.0 + 1e-6
    # The planted top axis is recovered (up to sign, fixed to be deterministic).
    assert abs(float(projection.components[0] @ basis[:, 0])) > 0.99


def test_round_trip_bytes_keeps_transform_and_version() -> None:
    data, _ = planted()
    projection = PcaProjection.fit(data, 6, seed=1)
    restored = PcaProjection.from_bytes(projection.to_bytes())
    assert restored.version == projection.version
    np.testing.assert_array_equal(restored.transform(data), projection.transform(data))
    np.testing.assert_array_equal(restored.explained_variance_ratio, projection.explained_variance_ratio)


def test_fit_is_deterministic_and_version_tracks_data() -> None:
    data, _ = planted()
    first = PcaProjection.fit(data, 6, seed=3)
    second = PcaProjection.fit(data.copy(), 6, seed=3)
    assert first.to_bytes() == second.to_bytes() and first.version == second.version
    other = PcaProjection.fit(planted(seed=9)[0], 6, seed=3)
    assert other.version != first.version


def test_new_items_projected_without_refit() -> None:
    data, _ = planted()
    projection = PcaProjection.fit(data[:400], 4, seed=0)
    before = projection.to_bytes()
    out = projection.transform(data[400:])
    assert out.shape == (100, 4) and projection.to_bytes() == before


def test_zero_projection_stays_zero() -> None:
    data, _ = planted()
    projection = PcaProjection.fit(data, 4, seed=0)
    assert np.all(projection.transform(projection.mean[None, :]) == 0.0)


def test_fewer_rows_than_dim_still_orthonormal() -> None:
    data, _ = planted(n=5)
    projection = PcaProjection.fit(data, 12, seed=0)
    np.testing.assert_allclose(projection.components @ projection.components.T, np.eye(12), atol=1e-5)


@pytest.mark.parametrize("dim", [0, 49])
def test_bad_dim_raises(dim: int) -> None:
    with pytest.raises(ValueError, match="dim"):
        PcaProjection.fit(planted()[0], dim, seed=0)


def test_bad_inputs_raise() -> None:
    projection = PcaProjection.fit(planted()[0], 4, seed=0)
    with pytest.raises(ValueError, match="embeddings"):
        projection.transform(np.zeros((3, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="embeddings"):
        PcaProjection.fit(np.zeros((1, 8), dtype=np.float32), 2, seed=0)
    blob = bytearray(projection.to_bytes())
    import io

    with np.load(io.BytesIO(bytes(blob))) as data:
        arrays = {key: data[key] for key in data.files}
    arrays["format_version"] = np.array(99)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with pytest.raises(ValueError, match="format_version"):
        PcaProjection.from_bytes(buffer.getvalue())


def test_a_rows_vector_does_not_depend_on_its_batch() -> None:
    """A worker embeds an item in whatever batch it arrives in: after a restart, in another one."""
    rng = np.random.default_rng(3)
    embeddings = rng.normal(size=(300, 64)).astype(np.float32)
    projection = PcaProjection.fit(embeddings, 16, seed=0)
    whole = projection.transform(embeddings)
    one_by_one = np.vstack([projection.transform(embeddings[i : i + 1]) for i in range(300)])
    in_sevens = np.vstack([projection.transform(embeddings[i : i + 7]) for i in range(0, 300, 7)])
    np.testing.assert_array_equal(whole, one_by_one)
    np.testing.assert_array_equal(whole, in_sevens)


def test_the_version_is_hashed_once_over_arrays_that_cannot_change() -> None:
    projection = PcaProjection.fit(np.random.default_rng(3).standard_normal((40, 12)), 4, seed=0)
    first = projection.version
    assert projection.__dict__["version"] == first  # kept: every slate names it
    with pytest.raises(ValueError, match="read-only"):
        projection.components[0, 0] += 1.0  # a change the kept version would not see
    assert PcaProjection.from_bytes(projection.to_bytes()).version == first
