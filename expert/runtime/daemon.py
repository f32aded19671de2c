"""Long-lived local servers (the Kafka broker, Spark's daemons): ports, processes, locks, stopping.

Why one module: a server a pattern starts must bind loopback only, be recognised as ours before we
signal it (a recycled pid may belong to a stranger), start and stop one at a time across processes
(a test session and a learner's terminal), and be stopped for good (SIGTERM so it shuts down
cleanly, SIGKILL if it will not go), or it lives on as an orphan JVM. `kafka.py` and `cluster.py`
both need exactly this, so it lives here once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

LOOPBACK = "127.0.0.1"
STOP_TIMEOUT_S = 30.0


def process_command(pid: int) -> str | None:
    """The command line of a live (non-zombie) process, or None if it is gone."""
    proc = Path("/proc") / str(pid)
    if proc.is_dir():
        with contextlib.suppress(OSError):
            if ") Z" in (proc / "stat").read_text():
                return None
            return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        return None
    try:
        out = subprocess.run(
            ["ps", "-o", "stat=,command=", "-p", str(pid)], capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    text = out.stdout.strip()
    return None if not text or text.startswith("Z") else text


def port_accepts(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def port_free(port: int) -> bool:
    """True if this process could bind 127.0.0.1:port (nothing else listens there).

    With SO_REUSEADDR, as the JVM servers bind: connections of a server that just died linger in
    TIME_WAIT for a minute, and they do not stop a new server from listening on its port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path | str, lines: int = 15) -> str:
    """The last errors of a server's log (or its last lines when it logged no error)."""
    path = Path(path)
    if not path.is_file():
        return "(no log written)"
    text = path.read_text(errors="replace").splitlines()
    interesting = [line for line in text if " ERROR " in line or "Exception" in line]
    return "\n".join((interesting or text)[-lines:])


@contextlib.contextmanager
def file_lock(directory: Path) -> Iterator[None]:
    """One start or stop at a time across processes: an exclusive lock on `directory/.lock`."""
    with (directory / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def terminate(pid: int, timeout: float = STOP_TIMEOUT_S, child: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM (the server's shutdown hooks run), wait up to `timeout`, then SIGKILL if it will not go.

    Pass `child` when this process started the server, so it is also reaped (no zombie left behind).
    """
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=timeout)
            return
    else:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process_command(pid) is not None:
            time.sleep(0.1)
    if process_command(pid) is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if child is not None:
            child.wait(timeout=10)
