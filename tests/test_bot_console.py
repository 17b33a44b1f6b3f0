"""``storyloom chat``: the conversation core in a terminal, driven through standard input."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bots.console.chat import parse_line
from bots.core import intents as it
from pipeline.models import Status
from pipeline.runtime import Runtime
from pipeline.settings import Settings
from tests.factories import story as make_story

ROOT = Path(__file__).resolve().parents[1]


def test_lines_become_intents() -> None:
    s = make_story()
    assert parse_line("/story a whale sings", None) == [it.StartStory(idea="a whale sings")]
    assert parse_line("a whale sings", None) == [it.FreeText(text="a whale sings")]
    assert parse_line("pick 2 3", s) == [it.PickFrame(story_id=s.id, scene=1, choice=3)]
    assert parse_line("picks 1 2", s) == [it.PickFrame(story_id=s.id, scene=0, choice=1),
                                          it.PickFrame(story_id=s.id, scene=1, choice=2)]
    assert parse_line("edit 2 The whale dives.", s) == [
        it.EditScene(story_id=s.id, scene=1, text="The whale dives.")]
    assert parse_line("edit 2", s) == [it.EditScene(story_id=s.id, scene=1, text=None)]
    assert parse_line("approve", None) == "there is no story yet: type /story <idea>"
    assert isinstance(parse_line("pick two", s), str)
    assert parse_line("/frobnicate", s) == [it.UnknownCommand(command="/frobnicate")]
    assert parse_line("settings aspect 16:9", s) == [it.ChangeSettings(key="aspect",
                                                                        value="16:9")]


async def test_storyloom_chat_through_stdin(settings: Settings, rt: Runtime,
                                            tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORYLOOM_")}
    env.update({
        "STORYLOOM_REDIS_URL": settings.redis_url.get_secret_value(),
        "STORYLOOM_DATA_DIR": str(settings.data_dir),
        "STORYLOOM_DEFAULT_SCENES": "3",
        "STORYLOOM_CANDIDATES": "2",
        "STORYLOOM_DEFAULT_RESOLUTION": "720p",
        "STORYLOOM_LOG_LEVEL": "WARNING",
    })
    lines = "\n".join([
        "help",
        "🐳🌊",
        "approve",
        "/story A lighthouse keeper <befriends> a stranded whale & sings",
        "wait",
        "pick 1 2",
        "pick 9 1",
        "picks 1 2 1",
        "status",
        "settings aspect 16:9",
        "cancel",
        "mystories",
        "",
    ])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pipeline.cli", "chat", cwd=tmp_path, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out_b, err_b = await asyncio.wait_for(proc.communicate(lines.encode()), 240)
    out, err = out_b.decode(), err_b.decode()
    assert proc.returncode == 0, err[-2000:]
    assert "pick <scene> <n>" in out  # help
    assert "Write your idea in words" in out
    assert "there is no story yet" in out
    assert "» A lighthouse keeper <befriends> a stranded whale & sings" in out
    # each scene once, in order, its frames with it: the terminal shows what a chat shows
    firsts = [out.index(f"🖼 Scene {k} of 3:") for k in (1, 2, 3)]
    assert firsts == sorted(firsts), out
    assert "📜" not in out
    assert "[2] " in out and ".png" in out  # frames as files on disk
    assert "Scene 1: frame 2 ✓" in out
    assert "This story has scenes 1 to 3, not 9." in out
    assert "every scene has a frame: type approve" in out
    assert "🛑 Cancelled" in out
    assert "(id " in out and "cancelled" in out
    ids = await rt.store.by_chat(
        (await rt.store.get((await rt.redis.zrevrange("sl:stories", 0, 0))[0].decode())).chat)
    story = await rt.store.get(ids[0])
    assert story.status == Status.cancelled
    assert [sc.picked is not None for sc in story.scenes] == [True, True, True]
    assert "Traceback" not in err
