"""ONNX export and `OnnxEncoder` (marked onnx: the default model is exported once per session)."""

import json
import shutil

import numpy as np
import pytest

from encoders import onnx_encoder as onnx_encoder_module
from encoders.base import Encoder
from encoders.device import cuda_available
from encoders.export import VariantRejectedError, export_onnx
from encoders.metadata import ModelMetadata, sha256_file
from encoders.models import default_model_dir
from encoders.onnx_encoder import OnnxEncoder, ort_has_cuda, resolve_providers
from encoders.texts import AGREEMENT_TEXTS

pytestmark = pytest.mark.onnx
TEXTS = [*AGREEMENT_TEXTS, "", "x"]


@pytest.fixture(scope="module")
def onnx_encoder(exported) -> OnnxEncoder:
    return OnnxEncoder(exported.onnx_path, providers="cpu", batch_size=16)


def test_parity_with_pytorch(onnx_encoder) -> None:
    from encoders.torch_model import TorchEncoder

    reference = TorchEncoder(default_model_dir(), max_length=256, batch_size=16).encode(TEXTS)
    ours = onnx_encoder.encode(TEXTS)
    assert ours.shape == (len(TEXTS), 384) and ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert float(np.sum(ours * reference, axis=1).min()) >= 0.9999


def test_protocol_and_fingerprint(exported, onnx_encoder) -> None:
    assert isinstance(onnx_encoder, Encoder)
    assert onnx_encoder.name == "all-MiniLM-L6-v2" and onnx_encoder.dim == 384
    assert onnx_encoder.fingerprint == f"onnx-{exported.metadata.sha256[:16]}-mean-L256"
    assert onnx_encoder.providers == resolve_providers("cpu")


def test_bucketing_preserves_order_and_values(onnx_encoder) -> None:
    texts = TEXTS[:12]
    batched = onnx_encoder.encode(texts)
    single = np.vstack([onnx_encoder.encode([text]) for text in texts])
    np.testing.assert_allclose(batched, single, atol=2e-5)
    reversed_batch = onnx_encoder.encode(texts[::-1])
    np.testing.assert_allclose(reversed_batch[::-1], batched, atol=2e-5)
    assert onnx_encoder.encode([]).shape == (0, 384)


def test_tokenizer_json_matches_autotokenizer(onnx_encoder) -> None:
    from encoders.tokenizer import load_fast_tokenizer

    auto = load_fast_tokenizer(default_model_dir())
    expected = auto(TEXTS, truncation=True, max_length=256)["input_ids"]
    assert onnx_encoder.tokenize(TEXTS) == [list(ids) for ids in expected]
    assert max(len(ids) for ids in onnx_encoder.tokenize(TEXTS)) <= 256


def test_metadata_and_int8_variant(exported) -> None:
    meta = ModelMetadata.read(exported.onnx_path)
    assert meta == exported.metadata
    assert (meta.dim, meta.pooling.mode, meta.max_length, meta.variant) == (384, "mean", 256, "fp32")
    assert meta.sha256 == sha256_file(exported.onnx_path)
    int8 = ModelMetadata.read(exported.variants["int8"])
    assert int8.variant == "int8" and int8.base_sha256 == meta.sha256
    assert int8.sha256 == sha256_file(exported.variants["int8"])
    assert int8.min_cosine_required == 0.98 and int8.min_cosine_to_fp32 >= 0.98
    assert int8.min_cosine_to_fp32 <= int8.mean_cosine_to_fp32 <= 1.0
    assert OnnxEncoder(exported.variants["int8"], providers="cpu").fingerprint != OnnxEncoder(
        exported.onnx_path, providers="cpu").fingerprint


def test_auto_providers_follow_gpu_presence() -> None:
    providers = resolve_providers("auto")
    assert providers[-1] == "CPUExecutionProvider"
    assert ("CUDAExecutionProvider" in providers) == (cuda_available() and ort_has_cuda())
    with pytest.raises(ValueError, match="providers"):
        resolve_providers("tpu")


def test_cuda_without_onnxruntimes_cuda_provider_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(onnx_encoder_module, "cuda_available", lambda: True)
    monkeypatch.setattr(onnx_encoder_module, "ort_has_cuda", lambda: False)
    with pytest.raises(RuntimeError, match=r"no CUDAExecutionProvider.*onnxruntime-gpu"):
        resolve_providers("cuda")
    assert resolve_providers("auto") == ["CPUExecutionProvider"]


@pytest.mark.skipif(cuda_available(), reason="a GPU is present: the CUDA session starts")
def test_a_cuda_session_that_falls_back_to_cpu_is_an_error(exported, monkeypatch) -> None:
    """A driver-level probe may say yes while ONNX Runtime cannot start CUDA (no libraries): asked
    for explicitly, that is an error, never a silent CPU run."""
    monkeypatch.setattr(onnx_encoder_module, "cuda_available", lambda: True)
    monkeypatch.setattr(onnx_encoder_module, "ort_has_cuda", lambda: True)
    with pytest.raises(RuntimeError, match="device cuda"):
        OnnxEncoder(exported.onnx_path, providers="cuda")


def test_other_model_dir_cls_pooling_fp16_and_parity(tiny_model_dir, tmp_path) -> None:
    from encoders.torch_model import TorchEncoder

    result = export_onnx(tiny_model_dir, tmp_path / "tiny", max_length=512, fp16=True)
    meta = result.metadata
    assert (meta.dim, meta.pooling.mode, meta.max_length) == (32, "cls", 128)  # capped at max positions
    fp16 = ModelMetadata.read(result.variants["fp16"])
    assert fp16.variant == "fp16" and fp16.min_cosine_to_fp32 >= 0.98
    ours = OnnxEncoder(result.onnx_path, providers="cpu").encode(TEXTS)
    reference = TorchEncoder(tiny_model_dir, max_length=128).encode(TEXTS)
    assert float(np.sum(ours * reference, axis=1).min()) >= 0.9999


def test_variant_below_threshold_is_refused(tiny_model_dir, tmp_path) -> None:
    with pytest.raises(VariantRejectedError, match="min cosine"):
        export_onnx(tiny_model_dir, tmp_path, int8=True, min_cosine=1.0)
    assert (tmp_path / "model.onnx").is_file() and not (tmp_path / "model.int8.onnx").exists()


def test_checksum_mismatch_and_missing_metadata(tiny_model_dir, tmp_path) -> None:
    result = export_onnx(tiny_model_dir, tmp_path)
    data = json.loads(result.onnx_path.with_suffix(".json").read_text())
    data["sha256"] = "0" * 64
    result.onnx_path.with_suffix(".json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="sha256"):
        OnnxEncoder(result.onnx_path, providers="cpu")
    moved = tmp_path / "other.onnx"
    shutil.copy(result.onnx_path, moved)
    with pytest.raises(FileNotFoundError, match="metadata"):
        OnnxEncoder(moved, providers="cpu")


def test_cli_export(tiny_model_dir, tmp_path) -> None:
    from click.testing import CliRunner

    from slatestream.export import encoders_group

    out = tmp_path / "cli"
    result = CliRunner().invoke(encoders_group, ["export", "--model-dir", str(tiny_model_dir), "--out", str(out),
                                                 "--int8", "--min-cosine", "0.5"])
    assert result.exit_code == 0, result.output
    assert (out / "model.onnx").is_file() and (out / "model.int8.json").is_file()
    assert "min cosine to fp32" in result.output
    refused = CliRunner().invoke(encoders_group, ["export", "--model-dir", str(tiny_model_dir), "--out", str(out),
                                                  "--int8", "--min-cosine", "1.0"])
    assert refused.exit_code != 0 and "rejected" in refused.output
