"""`tams up`, the README's command, as a newcomer runs it: from a working directory, with the
default relative data directory, until it serves, then Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import aiohttp

from tams_stack.credentials import PASSWORD_FILE, basic_authorization
from tams_stack.ports import free_port

from .helpers import video_flow
from .receivers import receiving

START_DEADLINE_S = 90.0
STOP_DEADLINE_S = 30.0


async def start_tams_up(cwd: Path, *args: str) -> asyncio.subprocess.Process:
    """`tams up` as the README runs it, from `cwd`, its output (both streams) in a pipe."""
    tams = Path(sys.executable).parent / "tams"
    return await asyncio.create_subprocess_exec(
        str(tams), "up", *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip


async def ready_output(process: asyncio.subprocess.Process) -> list[str]:
    """The lines `tams up` prints until it is ready and says how to stop it."""
    assert process.stdout is not None
    output: list[str] = []
    async with asyncio.timeout(START_DEADLINE_S):
        while not output or not output[-1].startswith("Press Ctrl-C"):
            line = await process.stdout.readline()
            assert line, "tams up exited:\n" + "".join(output)
            output.append(line.decode())
    return output


async def stop(process: asyncio.subprocess.Process, output: list[str]) -> None:
    """Ctrl-C, and it stops cleanly."""
    with contextlib.suppress(ProcessLookupError):  # it may have exited already
        process.send_signal(signal.SIGINT)
    async with asyncio.timeout(STOP_DEADLINE_S):
        rest, _ = await process.communicate()
    assert process.returncode == 0, "".join(output) + rest.decode()


def addresses(output: list[str]) -> list[str]:
    """The lines naming the broker's, the S3 server's and the services' ports."""
    names = ("Kafka broker", "S3 endpoint", "service ports")
    found = [line for line in output if line.strip().startswith(names)]
    assert len(found) == len(names), "".join(output)
    return found


async def test_tams_up_serves_from_a_relative_data_directory_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    port = free_port()
    # The default data directory: ./.tams-data
    process = await start_tams_up(tmp_path, "--port", str(port))
    output: list[str] = []
    try:
        output = await ready_output(process)
        password = (tmp_path / ".tams-data" / PASSWORD_FILE).read_text().strip()
        headers = {"Authorization": basic_authorization("admin", password)}
        async with (
            aiohttp.ClientSession(headers=headers) as http,
            http.get(f"http://127.0.0.1:{port}/service") as resp,
        ):
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["api_version"] == "8.2"
    finally:
        await stop(process, output)

    # Started again, it listens where it did: URLs handed out and a subscriber's broker
    # address still work.
    again = await start_tams_up(tmp_path, "--port", str(port))
    output_again: list[str] = []
    try:
        output_again = await ready_output(again)
    finally:
        await stop(again, output_again)
    assert addresses(output_again) == addresses(output)


async def test_tams_up_stops_the_stack_when_the_broker_exits(tmp_path: Path) -> None:
    # The local broker forgets its topics and, restarted alone, would acknowledge sends
    # to topics it no longer has: the stack stops, to be started again as a whole.
    data_dir = tmp_path / "data"
    process = await start_tams_up(tmp_path, "--port", str(free_port()), "--data-dir", str(data_dir))
    try:
        await ready_output(process)
        os.kill(broker_pid(data_dir), signal.SIGKILL)
        async with asyncio.timeout(STOP_DEADLINE_S):
            rest, _ = await process.communicate()
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
    assert process.returncode == 1
    assert "the Kafka broker (tansu) exited (killed by SIGKILL)" in rest.decode()
    assert "stopping the stack; start it again" in rest.decode()


async def test_tams_up_restarts_a_service_that_exits_and_loses_none_of_its_events(
    tmp_path: Path,
) -> None:
    """A service killed outright is started again on its port while the broker keeps what
    it had not read: an event of a change made while the webhooks service was down is
    delivered once it is back (the whole stack, stopped, would have taken it with it)."""
    data_dir = tmp_path / "data"
    port = free_port()
    process = await start_tams_up(tmp_path, "--port", str(port), "--data-dir", str(data_dir))
    output: list[str] = []
    try:
        output = await ready_output(process)
        password = (data_dir / PASSWORD_FILE).read_text().strip()
        headers = {"Authorization": basic_authorization("admin", password)}
        async with (
            receiving() as receiver,
            aiohttp.ClientSession(f"http://127.0.0.1:{port}", headers=headers) as http,
        ):
            body = {"url": receiver.url, "events": ["flows/created"]}
            async with http.post("/service/webhooks", json=body) as resp:
                assert resp.status == 201, await resp.text()
            os.kill(service_pid(data_dir, "webhooks"), signal.SIGKILL)
            flow = video_flow()
            async with http.put(f"/flows/{flow['id']}", json=flow) as resp:
                assert resp.status == 201, await resp.text()
            output += await lines_until(process, "webhooks is ready again")
            (created,) = await receiver.wait_for(1, timeout=30)
            assert created.event["flow"]["id"] == flow["id"]
    finally:
        await stop(process, output)
    assert any("service webhooks exited (killed by SIGKILL)" in line for line in output)


async def test_tams_up_refuses_a_gateway_port_another_program_holds(tmp_path: Path) -> None:
    """Another program (another stack, say) on the gateway's port would answer for this
    stack: it stops at once, saying so, rather than report itself ready."""
    holder = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = holder.sockets[0].getsockname()[1]
    try:
        process = await start_tams_up(
            tmp_path, "--port", str(port), "--data-dir", str(tmp_path / "data")
        )
        async with asyncio.timeout(START_DEADLINE_S):
            output, _ = await process.communicate()
    finally:
        holder.close()
    assert process.returncode == 1
    assert f"the gateway's port {port} is in use" in output.decode()
    assert "is ready" not in output.decode()


async def lines_until(process: asyncio.subprocess.Process, last: str) -> list[str]:
    """The lines `tams up` prints, up to one containing `last`."""
    assert process.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(START_DEADLINE_S):
        while not lines or last not in lines[-1]:
            line = await process.stdout.readline()
            assert line, "tams up exited:\n" + "".join(lines)
            lines.append(line.decode())
    return lines


def service_pid(data_dir: Path, service: str) -> int:
    """The process of `service` the stack in `data_dir` runs."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if f"tams_{service}".encode() in argv and (entry / "cwd").resolve() == data_dir:
                return int(entry.name)
    raise AssertionError(f"no {service} process runs in {data_dir}")


def broker_pid(data_dir: Path) -> int:
    """The tansu process running in `data_dir` (the stack starts it there)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if Path(argv[0].decode()).name == "tansu" and (entry / "cwd").resolve() == data_dir:
                return int(entry.name)
    raise AssertionError(f"no tansu process runs in {data_dir}")
