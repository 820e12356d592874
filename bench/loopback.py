"""What the HTTP benchmarks (bench.api, bench.analytics, bench.http_ingest) share:
`lifecycle serve` in a subprocess on a loopback port, a minimal keep-alive client, an
open-loop load, and the figures of a run (latency quantiles, the server's CPU time)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """`lifecycle serve --no-project` (the read API alone: the benchmarks project
    beforehand, or not at all) with ``options`` on a free loopback port, in a subprocess,
    once it answers /healthz."""

    def __init__(self, env: Mapping[str, str], *options: str) -> None:
        self.port = free_port()
        self.command = ["lifecycle", "serve", "--no-project", "--port", str(self.port), *options]
        self.process = subprocess.Popen(
            [sys.executable, "-m", *self.command],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise SystemExit("lifecycle serve did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


@contextmanager
def served(env: Mapping[str, str], *options: str) -> Iterator[Server]:
    """A ``Server`` for the ``with`` block, stopped on leaving it."""
    server = Server(env, *options)
    try:
        yield server
    finally:
        server.stop()


class Connection:
    """A minimal HTTP/1.1 keep-alive client connection: the load generator shares two
    cores with the server, so it must cost far less per request than the server does."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def get(self, path: str, key: str, etag: str | None = None) -> tuple[int, str | None]:
        """Status and ETag of a GET."""
        held = f"If-None-Match: {etag}\r\n" if etag else ""
        request = f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n"
        self.writer.write(f"{request}{held}\r\n".encode())
        status, tag, _ = await self._answer()
        return status, tag

    async def post(self, path: str, key: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        """Status and body of a POST."""
        self.writer.write(
            (
                f"POST {path} HTTP/1.1\r\nHost: bench\r\n"
                f"Authorization: Bearer {key}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
        status, _, answer = await self._answer()
        return status, answer

    async def _answer(self) -> tuple[int, str | None, bytes]:
        """Status, ETag and body of the answer to the request sent."""
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        tag = None
        for line in head.split(b"\r\n"):
            lowered = line.lower()
            if lowered.startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
            elif lowered.startswith(b"etag:"):
                tag = line.split(b":", 1)[1].strip().decode()
        return status, tag, await self.reader.readexactly(length)


async def connections(port: int, count: int) -> list[Connection]:
    return [await Connection.open(port) for _ in range(count)]


async def open_loop(
    pool: list[Connection],
    rate: int,
    count: int,
    send: Callable[[Connection, int], Awaitable[bool]],
) -> tuple[list[float], int]:
    """Send request n (``send``: whether it was answered as expected) at start + n/rate
    on a free connection of ``pool``; latency counts from the scheduled time, so a
    server falling behind shows (no coordinated omission). The latencies and the number
    of requests not answered as expected."""
    latencies: list[float] = []
    failures = 0
    start = time.perf_counter() + 0.05
    next_number = 0

    async def worker(connection: Connection) -> None:
        nonlocal failures, next_number
        while next_number < count:
            number = next_number
            next_number += 1
            scheduled = start + number / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            failures += not await send(connection, number)
            latencies.append(time.perf_counter() - scheduled)

    await asyncio.gather(*(worker(c) for c in pool))
    return latencies, failures


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def latency_columns(latencies: list[float]) -> str:
    """p50, p99 and max in ms, as the benchmarks' tables show them."""
    p50, p99 = quantile(latencies, 0.5) * 1000, quantile(latencies, 0.99) * 1000
    return f"{p50:>8.2f} {p99:>8.2f} {max(latencies) * 1000:>8.2f}"


def server_cpu_seconds(pid: int) -> float | None:
    """CPU time of the server and the processes it started (its workers), from /proc
    (Linux); None elsewhere."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        total = 0
        for process in [str(pid), *children]:
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    except (OSError, IndexError, ValueError):
        return None
    return total / os.sysconf("SC_CLK_TCK")


def cpu_ms_per_request(before: float | None, after: float | None, requests: int) -> float | None:
    """The server's CPU ms per request between two readings; None where /proc is not."""
    if before is None or after is None:
        return None
    return (after - before) / requests * 1000
