import numpy as np
import pytest

from encoders.device import cuda_available
from encoders.scoring import NumpyScorer, Scorer, make_scorer

BACKENDS = ["numpy", "torch", "torch-fp16"] + (["cuda", "cuda-fp16"] if cuda_available() else [])


def build(kind: str) -> Scorer:
    if kind == "numpy":
        return NumpyScorer()
    from encoders.scoring_torch import TorchScorer

    device = "cuda" if kind.startswith("cuda") else "cpu"
    return TorchScorer(device, fp16=kind.endswith("fp16"))


def tolerance(kind: str) -> float:
    return 2e-2 if kind.endswith("fp16") else 1e-5


def catalogue(n: int = 300, d: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(n, d)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def check_against_brute_force(kind, index, scores, queries, matrix, allowed) -> None:
    exact = queries @ matrix.T
    k = index.shape[1]
    for row in range(queries.shape[0]):
        assert set(index[row].tolist()) <= set(allowed.tolist())
        assert len(set(index[row].tolist())) == k
        # Returned scores are the items' scores, in descending order.
        np.testing.assert_allclose(scores[row], exact[row, index[row]], atol=tolerance(kind))
        assert np.all(np.diff(scores[row]) <= tolerance(kind))
        # Nothing left out scores higher than the k-th returned item.
        rest = np.setdiff1d(allowed, index[row])
        if rest.size:
            assert exact[row, rest].max() <= exact[row, index[row]].min() + 2 * tolerance(kind)


@pytest.mark.parametrize("kind", BACKENDS)
def test_topk_matches_brute_force(kind) -> None:
    scorer, matrix = build(kind), catalogue()
    scorer.set_matrix(matrix)
    queries = catalogue(5, seed=1)
    index, scores = scorer.topk(queries, 10)
    assert index.shape == scores.shape == (5, 10)
    assert index.dtype == np.int64 and scores.dtype == np.float32
    check_against_brute_force(kind, index, scores, queries, matrix, np.arange(300))


@pytest.mark.parametrize("kind", BACKENDS)
def test_candidate_rows_restrict_search(kind) -> None:
    scorer, matrix = build(kind), catalogue()
    scorer.set_matrix(matrix)
    rows = np.array([250, 3, 17, 99, 180, 42, 7], dtype=np.int64)
    queries = catalogue(4, seed=2)
    index, scores = scorer.topk(queries, 3, rows=rows)
    assert index.shape == (4, 3)
    check_against_brute_force(kind, index, scores, queries, matrix, rows)
    index, _ = scorer.topk(queries, 50, rows=rows)  # k larger than the candidates: clamped
    assert index.shape == (4, 7) and all(set(r) == set(rows.tolist()) for r in index.tolist())


@pytest.mark.parametrize("kind", BACKENDS)
def test_large_candidate_set_matches_brute_force(kind) -> None:
    """Candidates above the gather share (200 of 300 rows) score every row then gather: same answer."""
    scorer, matrix = build(kind), catalogue()
    scorer.set_matrix(matrix)
    rows = np.random.default_rng(3).permutation(300)[:200].astype(np.int64)
    queries = catalogue(4, seed=4)
    index, scores = scorer.topk(queries, 12, rows=rows)
    assert index.shape == (4, 12)
    check_against_brute_force(kind, index, scores, queries, matrix, rows)


@pytest.mark.parametrize("kind", BACKENDS)
def test_updates_and_growth_visible_to_next_call(kind) -> None:
    scorer, matrix = build(kind), catalogue(50)
    scorer.set_matrix(matrix)
    query = catalogue(1, seed=5)
    scorer.update_rows(np.array([7]), query)  # row 7 becomes the query itself
    index, scores = scorer.topk(query, 1)
    assert index[0, 0] == 7 and abs(scores[0, 0] - 1.0) < tolerance(kind)
    scorer.update_rows(np.array([51, 50]), np.vstack([-query, query * 2]))  # grow n 50 -> 52
    assert scorer.n_rows == 52
    index, _ = scorer.topk(query, 2)
    assert index[0].tolist() == [50, 7]
    assert scorer.topk(-query, 1)[0][0, 0] == 51
    big = catalogue(100, seed=9)  # growth beyond the first capacity
    scorer.update_rows(np.arange(52, 152), big)
    assert scorer.n_rows == 152
    assert scorer.topk(big[99:100], 1)[0][0, 0] == 151


@pytest.mark.parametrize("kind", BACKENDS)
def test_starts_empty_and_rejects_bad_input(kind) -> None:
    scorer = build(kind)
    scorer.update_rows(np.arange(3), catalogue(3))
    assert scorer.n_rows == 3 and scorer.dim == 16
    with pytest.raises(ValueError, match="without gaps"):
        scorer.update_rows(np.array([5]), catalogue(1))
    with pytest.raises(ValueError, match="queries"):
        scorer.topk(np.zeros((2, 4), dtype=np.float32), 1)
    with pytest.raises(ValueError, match="k must"):
        scorer.topk(catalogue(1), 0)
    with pytest.raises(ValueError, match="rows must lie"):
        scorer.topk(catalogue(1), 1, rows=np.array([3]))
    with pytest.raises(ValueError, match="vectors"):
        scorer.update_rows(np.array([0]), np.zeros((1, 5), dtype=np.float32))


def test_make_scorer_picks_device() -> None:
    auto = make_scorer()
    assert auto.backend == ("torch" if cuda_available() else "numpy")
    assert auto.device.startswith("cuda" if cuda_available() else "cpu")
    assert make_scorer("numpy").backend == "numpy"
    torch_cpu = make_scorer("torch")
    assert (torch_cpu.backend, torch_cpu.device) == ("torch", "cpu")
    if not cuda_available():
        with pytest.raises(ValueError, match="CUDA"):
            make_scorer("cuda")
    with pytest.raises(ValueError, match="device"):
        make_scorer("tpu")
