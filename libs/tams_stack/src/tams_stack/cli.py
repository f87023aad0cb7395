"""`tams`: run the whole TAMS stack on this machine.

tams up                  start tansu, SeaweedFS and the five services; Ctrl-C stops all;
                         a service that exits is started again, the broker or S3 server
                         exiting stops all
tams up --external       use the broker, S3 and store given by TAMS_* variables
tams backup --data-dir DIR --to DEST
                         copy a running stack's store, then the object bytes it references,
                         into a new data directory; `tams up --data-dir DEST` starts on it
tams asyncapi            print the AsyncAPI document of the public event stream
tams hash-password       print the scrypt hash of a password, for TAMS_AUTH_USERS
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import signal
import sys
import time
from pathlib import Path

from tams_runtime.passwords import hash_password
from tams_stack.backup import BackupFailed, backup
from tams_stack.credentials import TRUE
from tams_stack.stack import Stack, ensure_gateway_port_free


class RestartBudget:
    """A service that exits is started again, at most `MAX` times in `WINDOW_S` seconds;
    one that keeps exiting stops the stack."""

    MAX = 5
    WINDOW_S = 600.0

    def __init__(self) -> None:
        self._times: dict[str, list[float]] = {}

    def allow(self, service: str) -> bool:
        now = time.monotonic()
        recent = [t for t in self._times.get(service, []) if now - t < self.WINDOW_S]
        if len(recent) >= self.MAX:
            return False
        self._times[service] = [*recent, now]
        return True


def _up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    stack = Stack(
        Path(args.data_dir), gateway_port=args.port, external=args.external, remember_ports=True
    )
    stop = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        # Before anything starts: another stack there (on this data directory, say) would
        # otherwise fail later and less clearly.
        ensure_gateway_port_free(args.port)
        stack.start_infrastructure()
        asyncio.run(stack.start_services())
        elapsed = time.monotonic() - started
        print(f"TAMS is ready in {elapsed:.1f}s: {stack.gateway_url}", flush=True)
        if stack.broker and stack.object_store:
            print(f"  Kafka broker  {stack.broker.bootstrap}", flush=True)
            print(f"  S3 endpoint   {stack.object_store.endpoint}", flush=True)
        services = ", ".join(
            f"{name} {service.port}"
            for name, service in stack.services.items()
            if name != "gateway"
        )
        print(f"  service ports {services} (/health, /ready, /metrics)", flush=True)
        print(f"  data and logs {Path(args.data_dir).resolve()}", flush=True)
        _print_login(stack)
        print("Press Ctrl-C to stop.", flush=True)
        restarts = RestartBudget()
        while not stop:
            gone = stack.exited()
            if gone is not None:
                print(f"{gone.what} exited ({gone.how}):", file=sys.stderr)
                print(gone.log_tail, file=sys.stderr)
                if gone.service is None:
                    # The broker keeps its topics in memory: restarted alone, it would
                    # acknowledge sends to topics it no longer has and drop them.
                    print("stopping the stack; start it again", file=sys.stderr)
                    return 1
                if not restarts.allow(gone.service):
                    print(
                        f"{gone.service} was restarted {RestartBudget.MAX} times in "
                        f"{RestartBudget.WINDOW_S / 60:.0f} minutes: stopping the stack; "
                        "look at its log, then start it again",
                        file=sys.stderr,
                    )
                    return 1
                print(f"restarting {gone.service}", file=sys.stderr, flush=True)
                asyncio.run(stack.restart_service(gone.service))
                print(f"{gone.service} is ready again", file=sys.stderr, flush=True)
            time.sleep(0.2)
        return 0
    except RuntimeError as exc:
        print(f"tams up failed: {exc}", file=sys.stderr)
        return 1
    finally:
        print("stopping...", flush=True)
        stack.stop()
        print("stopped.", flush=True)


def _backup(args: argparse.Namespace) -> int:
    started = time.monotonic()
    dest = Path(args.to)
    was_there = dest.exists()
    try:
        report = backup(Path(args.data_dir), Path(args.to))
    except BackupFailed as exc:
        print(f"tams backup failed: {exc}", file=sys.stderr)
        if not was_there and dest.exists():
            print(f"{args.to} is incomplete (it has no tams.db): delete it", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    print(
        f"backed up {Path(args.data_dir).resolve()} to {Path(args.to).resolve()} in "
        f"{elapsed:.1f}s: the store, then {report.objects} objects ({report.bytes} bytes) "
        f"it references ({report.rounds} snapshot{'s' if report.rounds > 1 else ''})",
        flush=True,
    )
    if report.elsewhere:
        print(
            "not copied: objects on storage backends that are not buckets of this stack's "
            f"S3 server ({', '.join(sorted(report.elsewhere))}): backends on an S3 server of "
            "their own (back those up there), or not configured where `tams backup` runs "
            "(set TAMS_S3_EXTRA_BACKENDS as the stack has it)",
            file=sys.stderr,
        )
    return 0


def _print_login(stack: Stack) -> None:
    if stack.admin is not None:
        print(
            f"  API user      {stack.admin.user}, password in {stack.admin.password_file}\n"
            f"                curl -u {stack.admin.user}:$(cat {stack.admin.password_file}) "
            f"{stack.gateway_url}/service",
            flush=True,
        )
    elif stack.env.get("TAMS_AUTH_DISABLED", "").strip().lower() in TRUE:
        print("  WARNING: authentication is DISABLED (TAMS_AUTH_DISABLED)", flush=True)
    else:
        print("  API users     as configured (TAMS_AUTH_USERS / TAMS_AUTH_JWT_*)", flush=True)


def _hash_password() -> int:
    """Read a password (twice from a terminal, or one line from a pipe) and print its hash."""
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("the passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        print("empty password", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tams", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the stack and wait for Ctrl-C")
    up.add_argument("--data-dir", default=".tams-data", help="data directory (default %(default)s)")
    up.add_argument("--port", type=int, default=8000, help="gateway port (default %(default)s)")
    up.add_argument(
        "--external",
        action="store_true",
        help="use TAMS_KAFKA_BOOTSTRAP_SERVERS, TAMS_S3_* and TAMS_STORE from the environment",
    )
    copy = commands.add_parser(
        "backup", help="back up a running local stack into a new data directory"
    )
    copy.add_argument(
        "--data-dir", default=".tams-data", help="the stack's data directory (default %(default)s)"
    )
    copy.add_argument("--to", required=True, help="the backup: a new, or empty, directory")
    commands.add_parser("asyncapi", help="print the AsyncAPI document of the event stream")
    commands.add_parser(
        "hash-password",
        help="hash a password for TAMS_AUTH_USERS (reads it from the terminal or stdin)",
    )
    args = parser.parse_args(argv)
    if args.command == "up":
        return _up(args)
    if args.command == "backup":
        return _backup(args)
    if args.command == "hash-password":
        return _hash_password()
    if args.command == "asyncapi":
        from tams_runtime.event_stream import asyncapi_document

        print(json.dumps(asyncapi_document(), indent=2))
        return 0
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
