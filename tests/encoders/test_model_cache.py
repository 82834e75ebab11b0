"""The exported model cache: exported on first use, keyed by the source's checksum, reused after,
never in the working directory; a CUDA device is refused clearly where there is no GPU."""

import os
from pathlib import Path

import pytest

from encoders.device import cuda_available
from encoders.embedding import EncoderUnavailableError, open_encoder
from encoders.model_cache import CACHE_ENV, cache_root, exported_model, model_cache_dir, source_checksum

pytestmark = pytest.mark.onnx


def test_the_cache_root_is_per_user_and_configurable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "slatestream"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"
    monkeypatch.chdir(tmp_path)
    assert not cache_root().is_relative_to(Path(os.getcwd()) / ".data")


def test_a_first_use_exports_and_later_uses_reuse(tiny_model_dir: Path, tmp_path: Path) -> None:
    messages: list[str] = []
    first = exported_model(model_dir=tiny_model_dir, root=tmp_path, progress=messages.append)
    assert first.is_file() and first.with_suffix(".json").is_file() and len(messages) == 2
    assert first.parent == model_cache_dir(tiny_model_dir, tmp_path)
    stamp = first.stat().st_mtime_ns
    again = exported_model(model_dir=tiny_model_dir, root=tmp_path, progress=messages.append)
    assert again == first and again.stat().st_mtime_ns == stamp and len(messages) == 2  # no second export
    assert not list(tmp_path.glob("models/.export-*"))  # the staging directory is gone


def test_another_model_gets_another_directory(tiny_model_dir: Path, tmp_path: Path) -> None:
    changed = tmp_path / "changed"
    changed.mkdir()
    for path in tiny_model_dir.rglob("*"):
        if path.is_file():
            target = changed / path.relative_to(tiny_model_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    assert source_checksum(changed) == source_checksum(tiny_model_dir)
    (changed / "config.json").write_text((changed / "config.json").read_text() + " ")
    assert model_cache_dir(changed, tmp_path) != model_cache_dir(tiny_model_dir, tmp_path)


@pytest.mark.skipif(cuda_available(), reason="a GPU is present: CUDA is not refused")
def test_asking_for_cuda_without_a_gpu_is_a_clear_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = exported_model(model_dir=tiny_model_dir, root=tmp_path)
    with pytest.raises(EncoderUnavailableError, match="no usable CUDA GPU"):
        open_encoder("bert", model, device="cuda")
    assert open_encoder("bert", model, device="cpu").providers == ["CPUExecutionProvider"]
