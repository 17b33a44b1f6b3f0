"""docker-compose.yml, the Dockerfile, the README and CI agree with the code.

No Docker engine runs here, so these check consistency: every service command is a real CLI
command, every variable passed is a real setting, and the README's commands are what CI runs.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from pipeline.cli import build_parser
from pipeline.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def _cli_commands() -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return set(sub.choices)  # type: ignore[arg-type]


def test_every_service_command_is_a_real_cli_command() -> None:
    commands = _cli_commands()
    parser = build_parser()
    services = _compose()["services"]
    ours = {name: s for name, s in services.items() if s.get("image", "").startswith("storyloom")}
    assert {"worker", "telegram", "discord"} <= set(ours)
    for name, service in ours.items():
        argv = service["command"]
        assert argv[0] in commands, f"service {name} runs unknown command {argv[0]}"
        parser.parse_args(argv)  # raises SystemExit on unknown options
        check = service["healthcheck"]["test"]
        assert check[:2] == ["CMD", "storyloom"], name
        parser.parse_args(check[2:])


def test_every_variable_passed_is_a_real_setting() -> None:
    known = {"STORYLOOM_" + f.upper() for f in Settings.model_fields}
    for name, service in _compose()["services"].items():
        for var in service.get("environment", {}) or {}:
            if var.startswith("STORYLOOM_"):
                assert var in known, f"{name} passes unknown setting {var}"
    dockerfile = (ROOT / "Dockerfile").read_text()
    for var in re.findall(r"\b(STORYLOOM_[A-Z0-9_]+)=", dockerfile):
        assert var in known


def test_redis_has_aof_and_a_volume() -> None:
    redis = _compose()["services"]["redis"]
    cmd = " ".join(redis["command"])
    assert "--appendonly yes" in cmd and "--appendfsync everysec" in cmd
    assert any(v.endswith(":/data") for v in redis["volumes"])


def test_dockerfile_entrypoint_is_the_cli() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["storyloom"]' in text


def test_readme_starts_with_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text().splitlines()
    block = readme[readme.index("```sh") + 1 : readme.index("```", readme.index("```sh") + 1)]
    make_cmd, test_cmd = (line.split("#")[0].strip() for line in block[:2])
    assert shlex.split(make_cmd)[:3] == ["python3", "run.py", "make"]
    assert shlex.split(test_cmd) == ["python3", "run.py", "test"]
    ci = [ln.strip() for ln in (ROOT / ".ci/run").read_text().splitlines()]
    assert test_cmd in ci


def test_services_share_only_redis_and_the_minio_bucket() -> None:
    compose = _compose()
    services = compose["services"]
    assert {"minio", "minio-init"} <= set(services)
    init = " ".join(services["minio-init"]["command"])
    for name, service in services.items():
        if not service.get("image", "").startswith("storyloom"):
            continue
        env = service["environment"]
        settings = load_settings(env_file=None, **{
            k.removeprefix("STORYLOOM_").lower(): v for k, v in env.items()
            if k.startswith("STORYLOOM_")
        })
        assert settings.media_store == "s3", name
        assert settings.media_endpoint_url == "http://minio:9000"
        assert f"store/{settings.media_bucket}" in init  # the bucket the init job creates
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(env)
        assert not service.get("volumes"), f"{name} mounts a shared folder"
        assert services[name]["depends_on"]["minio-init"]["condition"] == \
            "service_completed_successfully"
    assert any(v.endswith(":/data") for v in services["minio"]["volumes"])
