"""The ``storyloom`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path
from typing import Any

from pipeline.errors import RedisUnavailable, SettingsError, StoryloomError, UsageError
from pipeline.logs import setup_logging
from pipeline.models import Story

log = logging.getLogger("storyloom")

EXIT_ERROR, EXIT_SETTINGS, EXIT_REDIS = 1, 2, 3  # 2 is also a bad argument, as argparse


def _version() -> str:
    try:
        return version("storyloom")
    except PackageNotFoundError:
        return "0+unknown"


# --------------------------------------------------------------------------- commands


def cmd_version(args: argparse.Namespace) -> int:
    print(f"storyloom {_version()}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from pipeline.connection import resolve_target
    from pipeline.settings import get_settings
    from pipeline.worker import BackgroundWorker

    settings = get_settings()
    if args.check:
        return asyncio.run(_check_worker(settings))
    target = resolve_target(settings)
    print(f"storyloom worker: queue on {target.shown}, {settings.worker_concurrency} jobs at once")
    asyncio.run(BackgroundWorker(settings, burst=args.burst, handle_signals=True).run())
    return 0


async def _check_worker(settings: Any) -> int:
    from pipeline.queue import health
    from pipeline.runtime import Runtime

    rt = await Runtime.open(settings)
    try:
        line = await health(rt.redis)
    finally:
        await rt.close()
    if line is None:
        print("no worker has reported in the last minute", file=sys.stderr)
        return 1
    print(line)
    return 0


async def _status(args: argparse.Namespace) -> int:
    from pipeline.queue import health, queue_depth
    from pipeline.runtime import Runtime
    from pipeline.settings import get_settings

    rt = await Runtime.open(get_settings())
    try:
        if args.story_id:
            story = await rt.store.get(args.story_id)
            print(_describe(story))
            return 0
        counts = await rt.store.count_by_status()
        print(f"redis:  {rt.target.shown}")
        print(f"queue:  {await queue_depth(rt.redis)} job(s) waiting")
        print(f"worker: {await health(rt.redis) or 'none reporting'}")
        print("stories:")
        for name, n in counts.items():
            print(f"  {name:<18} {n}")
        return 0
    finally:
        await rt.close()


def _describe(story: Story) -> str:
    lines = [
        f"{story.id}  {story.title or '(untitled)'}",
        f"  status:  {story.status.value}" + (f" ({story.error})" if story.error else ""),
        f"  idea:    {story.idea[:100]}",
        f"  options: {story.options.aspect} {story.options.resolution}, "
        f"{story.options.scenes} scenes, style {story.options.style}",
        f"  cost:    ${story.cost_usd:.4f}",
    ]
    for sc in story.scenes:
        pick = sc.picked or "-"
        lines.append(
            f"  scene {sc.index + 1}: frame {pick}, clip {'yes' if sc.clip else 'no'}, "
            f"voice {'yes' if sc.voice else 'no'} | {sc.narration[:60]}"
        )
    if story.video:
        lines.append(f"  video:   media {story.video.media.key} ({story.video.duration_s:.1f}s)")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    return asyncio.run(_status(args))


def cmd_make(args: argparse.Namespace) -> int:
    from pipeline.maker import make_story

    return asyncio.run(make_story(args))


def cmd_providers(args: argparse.Namespace) -> int:
    from pipeline.settings import get_settings
    from providers.check import check_chains
    from providers.registry import parse_chain

    settings = get_settings()
    for cap in ("script", "image", "video", "speech", "music"):
        entries = ", ".join(f"{n}:{m}" if m else n for n, m in parse_chain(getattr(settings, cap)))
        print(f"{cap:<7} {entries or 'offline'}")
    if args.no_check:
        return 0
    results = asyncio.run(check_chains(settings))
    print()
    for r in results:
        mark = "ok " if r.ok else "BAD"
        name = f"{r.provider}:{r.model}" if r.model else r.provider
        print(f"[{mark}] {r.capability:<7} {name:<40} {r.detail}")
    return 0 if all(r.ok for r in results) else 1


def cmd_gc(args: argparse.Namespace) -> int:
    return asyncio.run(_gc(args))


async def _gc(args: argparse.Namespace) -> int:
    from pipeline.gc import collect
    from pipeline.runtime import Runtime
    from pipeline.settings import get_settings

    settings = get_settings()
    media_days = settings.retention_media_days if args.media_days is None else args.media_days
    story_days = settings.retention_story_days if args.story_days is None else args.story_days
    if not media_days and not story_days:
        print("retention is off: set STORYLOOM_RETENTION_MEDIA_DAYS or "
              "STORYLOOM_RETENTION_STORY_DAYS (or --media-days / --story-days); nothing deleted")
        return 0
    rt = await Runtime.open(settings)
    try:
        report = await collect(rt, dry_run=args.dry_run, media_days=media_days,
                               story_days=story_days)
    finally:
        await rt.close()
    print(report.summary())
    if report.stories:
        print("stories:", " ".join(report.stories))
    if report.trimmed:
        print("media of:", " ".join(report.trimmed))
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    from pipeline.maker import retry_story

    return asyncio.run(retry_story(args))


def cmd_regen(args: argparse.Namespace) -> int:
    from pipeline.maker import regen_story

    return asyncio.run(regen_story(args))


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="storyloom",
        description="Storyloom: a story idea becomes a narrated storyboard video.",
    )
    p.add_argument("--version", action="version", version=f"storyloom {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    m = sub.add_parser("make", help="make a story video from an idea, here and now")
    m.add_argument("idea", help='the story idea, e.g. "A lighthouse keeper befriends a whale"')
    m.add_argument("--scenes", type=int, choices=range(3, 13), metavar="N", help="3 to 12")
    m.add_argument("--aspect", choices=["9:16", "16:9", "1:1"], help="default 9:16")
    m.add_argument("--resolution", choices=["720p", "1080p"], help="default 720p")
    m.add_argument("--style", help="storybook, anime, watercolor, comic, cinematic, pixel")
    m.add_argument("--out", type=Path, help="where to write the MP4 (the PNG goes beside it)")
    m.add_argument("--pick", choices=["auto", "ask"], default="auto",
                   help="pick frames automatically or ask here (default auto)")
    m.add_argument("--size-cap-mb", type=float, help="re-encode to fit, e.g. 10 or 50")
    m.add_argument("--no-music", action="store_true", help="leave out the music bed")
    m.set_defaults(func=cmd_make)

    r = sub.add_parser("regen", help="redo one scene of a finished story and reassemble")
    r.add_argument("story_id")
    r.add_argument("--scene", type=int, required=True, help="scene number, from 1")
    what = r.add_mutually_exclusive_group()
    what.add_argument("--frame", dest="what", action="store_const", const="frame")
    what.add_argument("--clip", dest="what", action="store_const", const="clip")
    what.add_argument("--voice", dest="what", action="store_const", const="voice")
    r.add_argument("--out", type=Path, help="where to write the new MP4")
    r.set_defaults(func=cmd_regen, what="frame")

    rt = sub.add_parser("retry", help="resume a failed story at the step that failed")
    rt.add_argument("story_id")
    rt.add_argument("--out", type=Path, help="where to write the MP4")
    rt.set_defaults(func=cmd_retry)

    w = sub.add_parser("worker", help="run a pipeline worker (arq)")
    w.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    w.add_argument("--check", action="store_true", help="exit 0 if a worker reported recently")
    w.set_defaults(func=cmd_worker)

    g = sub.add_parser("gc", help="delete what finished stories leave behind (retention)")
    g.add_argument("--dry-run", action="store_true",
                   help="say what would be deleted; delete nothing")
    g.add_argument("--media-days", type=float, metavar="N",
                   help="intermediate media of stories finished N days ago "
                        "(default STORYLOOM_RETENTION_MEDIA_DAYS)")
    g.add_argument("--story-days", type=float, metavar="N",
                   help="whole stories finished N days ago "
                        "(default STORYLOOM_RETENTION_STORY_DAYS)")
    g.set_defaults(func=cmd_gc)

    s = sub.add_parser("status", help="queue depth, stories by state, or one story")
    s.add_argument("story_id", nargs="?")
    s.set_defaults(func=cmd_status)

    pr = sub.add_parser("providers", help="list the provider chains and check each one")
    pr.add_argument("--no-check", action="store_true", help="list only; call no service")
    pr.set_defaults(func=cmd_providers)

    # Front-ends (the chat platforms) register their own commands through the
    # "storyloom.commands" entry-point group, so this package never imports them.
    for entry in sorted(entry_points(group="storyloom.commands"), key=lambda e: e.name):
        entry.load()(sub)

    v = sub.add_parser("version", help="print the version")
    v.set_defaults(func=cmd_version)

    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        from pipeline.settings import get_settings

        settings = get_settings()
        quiet = args.command in ("make", "regen", "retry") and settings.log_level == "INFO"
        setup_logging(settings.log_level, settings.secret_values(),
                      log_file=settings.log_file if quiet else None)
        return int(args.func(args))
    except (SettingsError, UsageError) as err:
        print(f"storyloom: {err}", file=sys.stderr)
        return EXIT_SETTINGS
    except RedisUnavailable as err:
        print(f"storyloom: {err}", file=sys.stderr)
        return EXIT_REDIS
    except StoryloomError as err:
        print(f"storyloom: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\nstoryloom: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
