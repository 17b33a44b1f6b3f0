"""Settings from the environment and from .env; bad values name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import SettingsError
from pipeline.settings import Settings, load_settings, redact_url

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_offline_and_embedded() -> None:
    s = load_settings(env_file=None)
    assert s.redis_url.get_secret_value() == ""
    assert (s.script, s.image, s.video, s.speech, s.music) == ("offline",) * 5
    assert s.default_aspect == "9:16" and s.default_resolution == "720p"


def test_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STORYLOOM_DEFAULT_SCENES", "4")
    monkeypatch.setenv("STORYLOOM_TELEGRAM_TOKEN", "123:abc")
    monkeypatch.setenv("STORYLOOM_DATA_DIR", str(tmp_path))
    s = load_settings(env_file=None)
    assert s.default_scenes == 4
    assert s.data_dir == tmp_path
    assert s.telegram_token.get_secret_value() == "123:abc"
    assert "123:abc" not in repr(s)


def test_from_dotenv_file(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("# comment\nSTORYLOOM_DEFAULT_ASPECT=16:9\nSTORYLOOM_CANDIDATES=2\n")
    s = load_settings(env_file=env)
    assert s.default_aspect == "16:9" and s.candidates == 2


def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORYLOOM_DEFAULT_SCENES", "forty")
    with pytest.raises(SettingsError) as info:
        load_settings(env_file=None)
    assert "STORYLOOM_DEFAULT_SCENES" in str(info.value)
    assert "forty" in str(info.value)


def test_out_of_range_value(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("STORYLOOM_DEFAULT_ASPECT=4:3\n")
    with pytest.raises(SettingsError, match="STORYLOOM_DEFAULT_ASPECT"):
        load_settings(env_file=env)


def test_unknown_setting_suggests_the_close_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORYLOOM_REDIS_ULR", "redis://x")
    with pytest.raises(SettingsError) as info:
        load_settings(env_file=None)
    assert "STORYLOOM_REDIS_ULR" in str(info.value)
    assert "STORYLOOM_REDIS_URL" in str(info.value)


def test_bad_redis_url_scheme_hides_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORYLOOM_REDIS_URL", "http://user:hunter2@example")
    with pytest.raises(SettingsError) as info:
        load_settings(env_file=None)
    assert "STORYLOOM_REDIS_URL" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_redact_url() -> None:
    assert redact_url("redis://:s3cret@db:6379/0") == "redis://:***@db:6379/0"
    assert redact_url("redis://me:s3cret@db/1") == "redis://me:***@db/1"
    assert redact_url("redis://db:6379") == "redis://db:6379"


def test_env_example_documents_every_setting_in_one_line() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    names = [ln.split("=", 1)[0].lstrip("# ").strip() for ln in lines if "=" in ln]
    expected = {"STORYLOOM_" + f.upper() for f in Settings.model_fields}
    assert set(names) == expected
    assert len(names) == len(set(names))
    for line in lines:
        if "=" in line:
            assert "#" in line.split("=", 1)[1], f"no description on: {line}"


def test_env_example_copied_as_env_loads_the_defaults() -> None:
    s = load_settings(env_file=ROOT / ".env.example")
    assert s == load_settings(env_file=None)


def test_an_unknown_provider_in_a_chain_fails_at_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STORYLOOM_SCRIPT", "nosuch")
    with pytest.raises(SettingsError) as err:
        load_settings(env_file=None)
    assert "STORYLOOM_SCRIPT" in str(err.value) and "unknown script provider 'nosuch'" in str(
        err.value) and "offline" in str(err.value)
    monkeypatch.setenv("STORYLOOM_SCRIPT", "offline")
    monkeypatch.setenv("STORYLOOM_IMAGE", "fal:fal-ai/flux/dev, elevenlabs")
    with pytest.raises(SettingsError, match=r"STORYLOOM_IMAGE: .*image provider 'elevenlabs'"):
        load_settings(env_file=None)
