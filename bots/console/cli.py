"""``storyloom chat``: registered with the CLI through the storyloom.commands entry point."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("chat", help="the chat conversation in this terminal (no token needed)")
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from bots.console.chat import run_console
    from pipeline.settings import get_settings

    return int(asyncio.run(run_console(get_settings())))
