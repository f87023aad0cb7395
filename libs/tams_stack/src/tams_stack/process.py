"""Child processes that die with their parent and are stopped by PID.

Every server the stack starts goes through `ManagedProcess`: it runs in its own session
(so a Ctrl-C in the terminal reaches only `tams`, which then stops children in order) and
asks the kernel to SIGKILL it when the spawning thread dies, so a crashed pytest or a
killed `tams up` never leaves orphaned brokers behind (INFRA-NOTES §4.20).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class ManagedProcess:
    """A started child process, its log file and how to stop it."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout: float = 5.0
    # Where this run's output begins in the (appended) log file.
    log_start: int = 0
    _stopped: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def how_it_ended(self) -> str:
        """`exit code N` or `killed by SIGNAME`, for a process that has ended."""
        code = self.popen.poll()
        if code is None:
            return "still running"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"

    def stop(self) -> int | None:
        """Signal the process, wait up to `stop_timeout`, then SIGKILL it."""
        if self._stopped:
            return self.popen.returncode
        self._stopped = True
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(self.stop_signal)
                self.popen.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
            except ProcessLookupError:
                pass
        return self.popen.returncode

    def log_tail(self, lines: int = 40) -> str:
        """The last lines this process wrote (the log file also holds earlier runs')."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self.log_start)
                text = log.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_dir: Path,
    stop_signal: signal.Signals = signal.SIGTERM,
    stop_timeout: float = 5.0,
) -> ManagedProcess:
    """Start `argv` with its output in `log_dir/<name>.log`."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log_file = log_path.open("ab")
    log_start = log_file.tell()
    try:
        popen = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    finally:
        log_file.close()
    return ManagedProcess(name, popen, log_path, stop_signal, stop_timeout, log_start)


def listening_pid_owns(pid: int, port: int) -> bool:
    """True if `pid` holds a socket listening on 127.0.0.1:`port`.

    tansu exits 0 after a panic when its port is taken, and a connect to that port then
    succeeds against the other owner; so readiness checks ownership, not just connect.
    """
    inodes: set[str] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            local, state, inode = cols[1], cols[3], cols[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port and inode in inodes:
                return True
    return False


def wait_until(predicate: object, timeout: float, interval: float = 0.02) -> bool:
    """Poll a zero-argument callable until it returns true or `timeout` passes."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
