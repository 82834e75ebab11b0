"""`PcaProjection`: encoder embeddings float32[n, D] -> unit bandit features float32[n, d].

Pure numpy. Fitted once (on a catalogue sample) and applied to new items without refit;
serialised as a versioned .npz (allow_pickle=False).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
FORMAT_VERSION = 1
MAX_FIT_ROWS = 200_000


@dataclass(frozen=True, eq=False)
class PcaProjection:
    """Principal-component projection followed by row L2 normalisation.

    Attributes:
        mean: float32[D], the fitted centre.
        components: float32[d, D], orthonormal rows, by decreasing explained variance; the
            sign of each row is fixed (largest-magnitude entry positive), so fits are
            deterministic.
        explained_variance: float32[d], variance along each component (descending).
        explained_variance_ratio: float32[d], share of the total variance of the fit data.

    The arrays are made read-only: the projection never changes, so its `version` is hashed once.
    """

    mean: FloatArray
    components: FloatArray
    explained_variance: FloatArray
    explained_variance_ratio: FloatArray

    def __post_init__(self) -> None:
        d, width = self.components.shape
        if self.mean.shape != (width,) or self.explained_variance.shape != (d,):
            raise ValueError(f"mean/explained_variance shapes {self.mean.shape}, "
                             f"{self.explained_variance.shape} do not match components {self.components.shape}")
        for array in (self.mean, self.components, self.explained_variance, self.explained_variance_ratio):
            array.flags.writeable = False

    @property
    def dim(self) -> int:
        """Output width d."""
        return int(self.components.shape[0])

    @property
    def input_dim(self) -> int:
        """Input width D."""
        return int(self.components.shape[1])

    @cached_property
    def version(self) -> str:
        """12 hex chars of sha256 over mean and components: changes iff the projection does
        (hashed on first use: ranking named it twice a request, ~27 us a hash at 384 x 32)."""
        digest = hashlib.sha256(self.mean.astype("<f4").tobytes())
        digest.update(self.components.astype("<f4").tobytes())
        return digest.hexdigest()[:12]

    @classmethod
    def fit(cls, embeddings: npt.ArrayLike, dim: int, seed: int) -> PcaProjection:
        """Fit on embeddings float[n, D] (n >= 2; 1 <= dim <= D).

        Uses the eigendecomposition of the float64 covariance (D x D), so cost is O(n D^2).
        When n > 200,000 a uniform sample of 200,000 rows drawn with `seed` is used.
        If n <= dim, trailing components span directions of zero fit variance (still
        orthonormal and deterministic).
        """
        data = np.asarray(embeddings, dtype=np.float64)
        if data.ndim != 2 or data.shape[0] < 2:
            raise ValueError(f"embeddings must be [n >= 2, D], got shape {data.shape}")
        if not 1 <= dim <= data.shape[1]:
            raise ValueError(f"dim must be in [1, {data.shape[1]}], got {dim}")
        if not np.isfinite(data).all():
            raise ValueError("embeddings contain NaN or inf")
        if data.shape[0] > MAX_FIT_ROWS:
            rng = np.random.default_rng(seed)
            data = data[np.sort(rng.choice(data.shape[0], MAX_FIT_ROWS, replace=False))]
        mean = data.mean(axis=0)
        centred = data - mean
        covariance = centred.T @ centred / (data.shape[0] - 1)
        values, vectors = np.linalg.eigh(covariance)
        order = np.argsort(-values, kind="stable")[:dim]
        values = np.clip(values[order], 0.0, None)
        components = vectors[:, order].T
        signs = np.sign(components[np.arange(dim), np.argmax(np.abs(components), axis=1)])
        components *= np.where(signs == 0, 1.0, signs)[:, None]
        total = float(np.trace(covariance))
        ratio = values / total if total > 0 else np.zeros_like(values)
        return cls(mean.astype(np.float32), components.astype(np.float32), values.astype(np.float32),
                   ratio.astype(np.float32))

    def transform(self, embeddings: npt.ArrayLike) -> FloatArray:
        """Project E float[m, D] -> float32[m, d]: centre, project, L2-normalise rows
        (rows that project to zero stay zero); each row independent of the batch it came in."""
        data = np.asarray(embeddings, dtype=np.float64)
        if data.ndim != 2 or data.shape[1] != self.input_dim:
            raise ValueError(f"embeddings must be [m, {self.input_dim}], got shape {data.shape}")
        # float64 then rounded to float32: a row's vector does not depend on the rows embedded with
        # it (a float32 matmul's rounding does, ~3e-7, by batch shape), so a worker that embeds an
        # item in another batch after a restart learns exactly the same sums
        out = (data - self.mean.astype(np.float64)) @ self.components.T.astype(np.float64)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out.astype(np.float32)

    def to_bytes(self) -> bytes:
        """Versioned .npz bytes (no pickle)."""
        buffer = io.BytesIO()
        np.savez(buffer, format_version=np.array(FORMAT_VERSION), mean=self.mean, components=self.components,
                 explained_variance=self.explained_variance,
                 explained_variance_ratio=self.explained_variance_ratio)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> PcaProjection:
        """Inverse of `to_bytes`; rejects unknown format versions."""
        with np.load(io.BytesIO(blob), allow_pickle=False) as data:
            version = int(data["format_version"])
            if version != FORMAT_VERSION:
                raise ValueError(f"format_version must be {FORMAT_VERSION}, got {version}")
            return cls(*(np.asarray(data[k], dtype=np.float32) for k in
                         ("mean", "components", "explained_variance", "explained_variance_ratio")))
