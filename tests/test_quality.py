"""The conventions' static gates: ruff everywhere, mypy --strict on the three packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_is_clean() -> None:
    done = _run("ruff", "check", "bots", "pipeline", "providers", "tests", "bench", "run.py")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict_on_pipeline_providers_and_bots() -> None:
    done = _run("mypy", "pipeline", "providers", "bots")
    assert done.returncode == 0, done.stdout + done.stderr
