"""The storyloom command as a person runs it: a subprocess, stdin for answers, files out."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]


def _run(rt: Runtime, *args: str | bytes, stdin: str = "", cwd: Path | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORYLOOM_")}
    env |= {"STORYLOOM_REDIS_URL": rt.target.url, "STORYLOOM_DATA_DIR": str(rt.settings.data_dir),
            "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], input=stdin,
                          capture_output=True, text=True, env=env, cwd=cwd or ROOT,
                          timeout=timeout)


def test_help_lists_the_commands(rt: Runtime) -> None:
    done = _run(rt, "--help")
    assert done.returncode == 0
    for command in ("make", "regen", "retry", "worker", "status", "version", "providers", "gc"):
        assert command in done.stdout


@pytest.mark.slow
async def test_make_with_pick_ask_writes_the_video_and_sheet(rt: Runtime, tmp_path: Path) -> None:
    from pipeline.render.assemble import plan_timeline, probe

    out = tmp_path / "films" / "whale.mp4"
    done = _run(rt, "make", "A lighthouse keeper befriends a stranded whale", "--scenes", "3",
                "--pick", "ask", "--out", str(out), stdin="2\n\n1\n", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    text = done.stdout
    for label in ("writing the script", "drawing the storyboard", "animating",
                  "recording the narration", "assembling the video"):
        assert label in text
    assert "pick 1-3" in text and "side by side:" in text
    assert f"video:       {out}" in text and f"storyboard:  {out.with_suffix('.png')}" in text
    assert out.is_file() and out.with_suffix(".png").is_file()

    story_id = re.search(r"story id:\s+(\w+)", text).group(1)  # type: ignore[union-attr]
    story = await rt.store.get(story_id)
    assert [s.picked for s in story.scenes] == [
        story.scenes[0].candidates[1].id, story.scenes[1].candidates[0].id,
        story.scenes[2].candidates[0].id,
    ]
    info = probe(out)
    assert (info.video_codec, info.width, info.height, info.pix_fmt) == ("h264", 720, 1280,
                                                                         "yuv420p")
    assert info.audio_codec == "aac" and info.sample_rate >= 44100
    narration = [s.voice.duration_s for s in story.scenes if s.voice]
    slots = plan_timeline(narration, 0.5, fps=24)
    assert abs(info.duration_s - (slots[-1].start + slots[-1].length)) < 0.5

    status = _run(rt, "status", story_id)
    assert status.returncode == 0 and "done" in status.stdout
    assert "cost:    $0.0000" in status.stdout

    again = tmp_path / "films" / "whale-2.mp4"
    regen = _run(rt, "regen", story_id, "--scene", "2", "--clip", "--out", str(again),
                 cwd=tmp_path)
    assert regen.returncode == 0, regen.stdout + regen.stderr
    assert "redoing the clip of scene 2" in regen.stdout
    assert again.is_file() and again.read_bytes() != out.read_bytes()
    redone = await rt.store.get(story_id)
    assert redone.scenes[1].take == 1 and redone.scenes[0].take == 0


@pytest.mark.parametrize("idea", ["", "   ", "\x01\x02", "y" * 2500])
def test_bad_idea_is_a_clear_message_and_nothing_is_made(rt: Runtime, idea: str,
                                                         tmp_path: Path) -> None:
    done = _run(rt, "make", idea, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("storyloom: the idea ")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "storyloom-out").exists()


def test_unknown_story_and_bad_setting(rt: Runtime) -> None:
    missing = _run(rt, "status", "nosuchstory")
    assert missing.returncode == 1 and "no story with id 'nosuchstory'" in missing.stderr
    env_bad = _run(rt, "regen", "nosuchstory", "--scene", "1", "--clip")
    assert env_bad.returncode == 1 and "Traceback" not in env_bad.stderr


def test_a_bad_setting_stops_start_up_naming_it(rt: Runtime, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("STORYLOOM_DEFAULT_SCENES=99\n")
    done = _run(rt, "status", cwd=tmp_path)
    assert done.returncode == 2
    assert "STORYLOOM_DEFAULT_SCENES" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("command,variable", [("telegram", "STORYLOOM_TELEGRAM_TOKEN"),
                                              ("discord", "STORYLOOM_DISCORD_TOKEN")])
def test_a_bot_without_its_token_says_which_setting(rt: Runtime, command: str,
                                                    variable: str) -> None:
    done = _run(rt, command)
    assert done.returncode == 2
    assert variable in done.stderr and "storyloom chat" in done.stderr
    assert "Traceback" not in done.stderr


def test_make_times_steps_by_their_events_and_leaves_out_the_wait_for_picks() -> None:
    import io

    from pipeline.events import EventKind, StoryEvent
    from pipeline.maker import Session
    from pipeline.models import Status
    from tests.factories import ROOM

    session = Session(None, None, out=io.StringIO())  # type: ignore[arg-type]

    def ev(kind: EventKind, step: str, at: float) -> StoryEvent:
        return StoryEvent(story_id="s", kind=kind, chat=ROOM, status=Status.drafting,
                          step=step, at=at)

    # read late and all at once, as a busy loop would: the events' own times count
    for e in [ev(EventKind.status, "script", 100.0), ev(EventKind.status, "storyboard", 100.5),
              ev(EventKind.awaiting_approval, "storyboard", 102.0),
              ev(EventKind.status, "animate", 400.0), ev(EventKind.status, "voice", 407.0),
              ev(EventKind.status, "assemble", 410.0)]:
        session.render(e)
    session._mark_step("end", 418.0)
    assert session.timing_report() == (
        "step times: script 0.5s, storyboard 1.5s, animate 7.0s, voice 3.0s, assemble 8.0s")


@pytest.mark.parametrize("args,says", [
    (["--size-cap-mb", "0.5"], "--size-cap-mb 0.5: the size cap must be at least 1 MB"),
    (["--size-cap-mb", "-5"], "--size-cap-mb -5: the size cap must be at least 1 MB"),
    (["--style", "s" * 300], "--style: String should have at most 40 characters"),
    (["--out", "/dev/null/sub/d.mp4"], "--out /dev/null/sub/d.mp4: /dev/null is not a folder"),
])
async def test_bad_options_are_refused_before_a_story_exists(
    rt: Runtime, tmp_path: Path, args: list[str], says: str
) -> None:
    done = _run(rt, "make", "A whale befriends a lighthouse keeper", *args, cwd=tmp_path,
                timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr == f"storyloom: {says}\n"
    assert await rt.redis.zcard("sl:stories") == 0


async def test_an_idea_that_is_not_utf8_is_a_clear_message(rt: Runtime, tmp_path: Path) -> None:
    done = _run(rt, "make", b"A whale \xff\xfe story", cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("storyloom: the idea is not valid UTF-8 text")
    assert done.stderr.count("\n") == 1
    assert await rt.redis.zcard("sl:stories") == 0


def _make_until(rt: Runtime, cwd: Path, marker: str, *args: str) -> subprocess.Popen[str]:
    """Start ``storyloom make`` and return once it printed ``marker``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORYLOOM_")}
    env |= {"STORYLOOM_REDIS_URL": rt.target.url,
            "STORYLOOM_DATA_DIR": str(rt.settings.data_dir), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "make", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=cwd)
    assert proc.stdout is not None
    seen = ""
    for line in proc.stdout:
        seen += line
        if marker in line:
            return proc
    raise AssertionError(f"make ended before {marker!r}: {seen}{proc.stderr.read()}")  # type: ignore[union-attr]


@pytest.mark.slow
async def test_ctrl_c_stops_the_story_cleanly_and_says_how_to_resume(
    rt: Runtime, tmp_path: Path
) -> None:
    import asyncio
    import signal

    from pipeline.models import Status
    from pipeline.queue import worker_alive

    proc = await asyncio.to_thread(_make_until, rt, tmp_path, "» drawing the storyboard",
                                   "A heron and a fox share a frozen pond", "--scenes", "3")
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err and "never retrieved" not in err, err
    story_id = re.search(r"resume it with: storyloom retry (\w+)", out).group(1)  # type: ignore[union-attr]
    story = await rt.store.get(story_id)
    assert story.status == Status.failed and story.error == "stopped with Ctrl-C before it finished"
    assert not await worker_alive(rt.redis)

    done = await asyncio.to_thread(_run, rt, "retry", story_id, "--out",
                                   str(tmp_path / "pond.mp4"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "pond.mp4").is_file()


def test_a_failed_make_prints_one_clear_line_and_how_to_retry(rt: Runtime, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORYLOOM_")}
    env |= {"STORYLOOM_REDIS_URL": rt.target.url, "STORYLOOM_DATA_DIR": str(rt.settings.data_dir),
            "PYTHONPATH": str(ROOT), "STORYLOOM_IMAGE": "fal", "STORYLOOM_FAL_KEY": "k-123456",
            "STORYLOOM_FAL_BASE_URL": "http://127.0.0.1:9", "STORYLOOM_JOB_RETRIES": "0",
            "STORYLOOM_PROVIDER_RETRIES": "0"}
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "make",
                           "A fox and a heron share a winter lake", "--scenes", "3"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 1
    assert done.stderr == "", done.stderr  # no step traceback, no CancelledError
    failed = [ln for ln in done.stdout.splitlines() if ln.startswith("✗ story ")]
    assert len(failed) == 1 and "failed: image: every provider failed" in failed[0]
    story_id = failed[0].split()[2]
    assert f"  resume it with: storyloom retry {story_id}" in done.stdout
    log = (rt.settings.data_dir / "logs" / "storyloom.log").read_text()
    assert "Traceback" in log and "k-123456" not in log  # the details are kept, redacted
