"""``storyloom discord``: registered with the CLI through the storyloom.commands entry point."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("discord", help="run the Discord bot")
    p.add_argument("--worker", action="store_true",
                   help="also run a pipeline worker in this process (one machine)")
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from bots.discord.app import run
    from pipeline.errors import SettingsError
    from pipeline.settings import get_settings

    settings = get_settings()
    if not settings.discord_token.get_secret_value():
        raise SettingsError("STORYLOOM_DISCORD_TOKEN is empty: set it to your application's bot "
                            "token from the Discord developer portal (or try `storyloom chat`, "
                            "which needs none)")
    asyncio.run(run(settings, with_worker=True if args.worker else None))
    return 0
