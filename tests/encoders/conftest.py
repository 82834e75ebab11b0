"""Session fixtures: the default model exported once, and a tiny random BERT directory."""

import shutil
from pathlib import Path

import pytest

from encoders.models import default_model_dir, set_offline


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """all-MiniLM-L6-v2 exported once per session (fp32 + int8) into a session tmp dir."""
    from encoders.export import export_onnx

    return export_onnx(None, tmp_path_factory.mktemp("onnx-minilm"), int8=True)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide random BERT with the MiniLM tokenizer and CLS pooling (fast to export)."""
    set_offline()
    import torch
    from transformers import BertConfig, BertModel

    out = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(str(out))
    source = default_model_dir()
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(source / name, out / name)
    (out / "1_Pooling").mkdir()
    (out / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}')
    return out
