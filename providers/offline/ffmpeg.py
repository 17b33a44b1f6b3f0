"""The bundled ffmpeg binary, run as an asyncio subprocess.

Storyloom never assumes a system ffmpeg: ``imageio-ffmpeg`` ships one. Every call runs
non-interactively and quietly; a failure raises :class:`FFmpegError` carrying the tail of ffmpeg's
stderr, which is where ffmpeg says what went wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
from collections.abc import AsyncIterator, Sequence

from providers.base import ProviderError

STDERR_TAIL = 1500


class FFmpegError(ProviderError):
    """ffmpeg exited with an error; ``stderr`` holds the end of what it printed."""

    def __init__(self, provider: str, message: str, stderr: str = "") -> None:
        tail = stderr.strip()[-STDERR_TAIL:]
        super().__init__(provider, f"{message}: {tail}" if tail else message)
        self.stderr = tail


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg (or IMAGEIO_FFMPEG_EXE)."""
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def encoder_threads() -> int:
    """x264 threads: every core of a small box, but never a crowd on a shared one."""
    return max(1, min(os.cpu_count() or 2, 4))


async def run_ffmpeg(
    args: Sequence[str],
    *,
    stdin: AsyncIterator[bytes] | None = None,
    provider: str = "offline",
) -> bytes:
    """Run ``ffmpeg -nostdin -hide_banner -loglevel error <args>`` and return its stdout.

    ``stdin``, when given, is streamed to ffmpeg's standard input (raw frames, say) with
    backpressure; ffmpeg reads it as ``-i pipe:0``. The process is killed if the caller is
    cancelled, so no encoder outlives its job.
    """
    read_fd, write_fd = os.pipe() if stdin is not None else (-1, -1)
    try:
        proc = await asyncio.create_subprocess_exec(
            ffmpeg_exe(),
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            *args,
            stdin=read_fd if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except BaseException:
        _close(write_fd)
        raise
    finally:
        _close(read_fd)
    assert proc.stdout is not None and proc.stderr is not None
    out_task = asyncio.ensure_future(proc.stdout.read())
    err_task = asyncio.ensure_future(proc.stderr.read())
    try:
        if stdin is not None:
            widen_pipe(write_fd)
            try:
                async for chunk in stdin:
                    # A blocking write from a thread: asyncio's pipe transport moves large
                    # frames in 64 KiB event-loop steps, which costs more than the encode.
                    if not await asyncio.to_thread(_write_all, write_fd, chunk):
                        break  # ffmpeg stopped reading; its exit code and stderr say why
            finally:
                _close(write_fd)
                write_fd = -1
                aclose = getattr(stdin, "aclose", None)
                if aclose is not None:
                    await aclose()  # stop drawing frames nobody will read
        out, err = await asyncio.gather(out_task, err_task)
        code = await proc.wait()
    finally:
        _close(write_fd)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for task in (out_task, err_task):
            task.cancel()
    if code != 0:
        raise FFmpegError(provider, f"ffmpeg exited with code {code}", err.decode(errors="replace"))
    return out


def _write_all(fd: int, data: bytes) -> bool:
    """Write everything; False if the reader has gone."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True


def widen_pipe(fd: int) -> None:
    """Ask Linux for a 1 MiB pipe so a frame crosses in a few writes, not dozens."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, set_size, 1 << 20)


def _close(fd: int) -> None:
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)
