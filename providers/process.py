"""Whether a process that holds something (a heartbeat, a provider slot, a scratch folder) is
still running: one answer for every holder, so a killed worker's holdings are freed at once on
its own machine instead of when a lease runs out."""

from __future__ import annotations

import os
import socket


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` of this machine is running (a zombie is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def holder() -> str:
    """This process as a holder: ``host pid``."""
    return f"{socket.gethostname()} {os.getpid()}"


def holder_gone(owner: str) -> bool:
    """True when ``owner`` (from :func:`holder`) is a process of this machine that has ended;
    a holder on another machine is never judged from here."""
    host, _, pid = owner.rpartition(" ")
    return host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))
