from click.testing import CliRunner

from slatestream.export import encoders_group


def test_group_and_export_help() -> None:
    assert encoders_group.name == "encoders"
    result = CliRunner().invoke(encoders_group, ["export", "--help"])
    assert result.exit_code == 0
    for option in ("--model-dir", "--out", "--int8", "--fp16", "--min-cosine"):
        assert option in result.output


def test_missing_model_dir_is_a_clear_error(tmp_path) -> None:
    result = CliRunner().invoke(encoders_group, ["export", "--model-dir", str(tmp_path / "none"), "--out",
                                                 str(tmp_path / "out")])
    assert result.exit_code != 0 and "config.json" in result.output
