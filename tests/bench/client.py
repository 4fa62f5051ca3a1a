"""The bench's HTTP clients: many concurrent requests, and many live-log viewers, from one
thread driving raw sockets with a selector.

The bench shares the machine with the server it measures, so its client must cost next to
nothing: requests are bytes prepared beforehand, and no thread or library sits between
the socket and the clock.
"""

from __future__ import annotations

import json
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.bench.common import START_SECONDS, BenchError


def raw_request(port: int, method: str, path: str, body: bytes = b"",
                headers: dict[str, str] | None = None) -> bytes:
    """The bytes of one HTTP/1.1 request on a connection of its own."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close",
             *(f"{name}: {value}" for name, value in (headers or {}).items())]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Exchange:
    """One request on its own connection: what is left to send, what came back."""

    def __init__(self, raw: bytes) -> None:
        self.unsent = memoryview(raw)
        self.received = bytearray()

    def status(self) -> int:
        """The response's status code; 0 when the server closed without one."""
        return status_of(bytes(self.received))


def status_of(response: bytes) -> int:
    """The status code of a response's bytes; 0 when there is none."""
    parts = response[:16].split(b" ")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def connect(port: int) -> socket.socket:
    """A non-blocking connection to the loopback ``port``, under way."""
    connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    connection.setblocking(False)
    connection.connect_ex(("127.0.0.1", port))
    return connection


def send_concurrently(port: int, requests: list[bytes], clients: int
                      ) -> tuple[list[int], float]:
    """``requests``, ``clients`` at a time, each on a connection of its own as forges and
    image proxies send them; their status codes and the seconds from the first connection
    to the last answer. Each response ends where the server closes."""
    waiting = iter(requests)
    selector = selectors.DefaultSelector()
    statuses: list[int] = []

    def open_next() -> None:
        raw = next(waiting, None)
        if raw is not None:
            selector.register(connect(port), selectors.EVENT_WRITE, Exchange(raw))

    began = time.perf_counter()
    for _ in range(clients):
        open_next()
    while selector.get_map():
        ready = selector.select(timeout=START_SECONDS)
        if not ready:
            raise BenchError(f"no answer from the web server for {START_SECONDS} s")
        for key, events in ready:
            connection, exchange = key.fileobj, key.data
            if events & selectors.EVENT_WRITE:
                exchange.unsent = exchange.unsent[connection.send(exchange.unsent):]
                if not exchange.unsent:
                    selector.modify(connection, selectors.EVENT_READ, exchange)
            elif chunk := connection.recv(65536):
                exchange.received += chunk
            else:
                selector.unregister(connection)
                connection.close()
                statuses.append(exchange.status())
                open_next()
    selector.close()
    return statuses, time.perf_counter() - began


@dataclass
class Viewer:
    """One live-log follower: its socket, unparsed bytes, and the ``out`` events it got
    as (arrival time, html)."""

    connection: socket.socket
    request: bytes
    buffer: bytearray = field(default_factory=bytearray)
    outs: list[tuple[float, str]] = field(default_factory=list)
    headers_done: bool = False
    ended: bool = False
    #: The server closed the connection (before the end event unless ``ended``).
    closed: bool = False

    def feed(self, chunk: bytes, arrived: float) -> None:
        """Parse what arrived: the response head once, then SSE events separated by blank
        lines (the body is chunked; chunk sizes are lines that carry no field)."""
        self.buffer += chunk
        if not self.headers_done:
            head, separator, rest = bytes(self.buffer).partition(b"\r\n\r\n")
            if not separator:
                return
            if b" 200 " not in head.split(b"\r\n", 1)[0]:
                raise BenchError(f"the log stream answered {head[:40]!r}")
            self.headers_done, self.buffer = True, bytearray(rest)
        while (end := self.buffer.find(b"\n\n")) >= 0:
            event, self.buffer = bytes(self.buffer[:end]), self.buffer[end + 2:]
            kind, data = "", ""
            for line in event.decode("utf-8").split("\n"):
                line = line.rstrip("\r")
                if line.startswith("event:"):
                    kind = line.partition(":")[2].strip()
                elif line.startswith("data:"):
                    data = line.partition(":")[2].strip()
            if kind == "out":
                self.outs.append((arrived, json.loads(data)["html"]))
            elif kind == "end":
                self.ended = True


def follow(port: int, path: str, viewers: int, seconds: float,
           on_connected: Callable[[], None]) -> list[Viewer]:
    """Open ``viewers`` SSE connections to ``path``, call ``on_connected`` once all got
    their response head (or were closed), and follow them until every one saw the ``end``
    event or was closed: a viewer dropped early is counted by the caller as lines missed."""
    selector = selectors.DefaultSelector()
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               "Accept: text/event-stream\r\n\r\n").encode()
    followers = []
    for _ in range(viewers):
        viewer = Viewer(connect(port), request)
        followers.append(viewer)
        selector.register(viewer.connection, selectors.EVENT_WRITE, viewer)
    deadline = time.monotonic() + seconds
    started = False
    while not all(viewer.ended or viewer.closed for viewer in followers):
        if time.monotonic() > deadline:
            done = sum(viewer.ended for viewer in followers)
            raise BenchError(f"only {done} of {viewers} viewers saw the job end in {seconds} s")
        if not started and all(viewer.headers_done or viewer.closed for viewer in followers):
            started = True
            on_connected()
        for key, events in selector.select(timeout=1):
            viewer = key.data
            if events & selectors.EVENT_WRITE:
                sent = viewer.connection.send(viewer.request)
                viewer.request = viewer.request[sent:]
                if not viewer.request:
                    selector.modify(viewer.connection, selectors.EVENT_READ, viewer)
                continue
            try:
                chunk = viewer.connection.recv(262144)
            except ConnectionError:
                chunk = b""
            if chunk:
                viewer.feed(chunk, time.time())
            else:
                selector.unregister(viewer.connection)
                viewer.closed = True
    for viewer in followers:
        viewer.connection.close()
    selector.close()
    return followers


def rate_rounds(port: int, make: Callable[[str], list[bytes]], rounds: int, clients: int,
                expect: int, warm_up: int) -> tuple[list[float], list[int]]:
    """Per round: answers with status ``expect`` per second, and how many requests did not
    get it. ``make(label)`` builds a round's requests before the clock starts; an untimed
    warm-up of ``warm_up`` requests goes first, as a running service is warm."""
    send_concurrently(port, make("warm-up")[:warm_up], clients)
    rates, lost = [], []
    for number in range(rounds):
        requests = make(f"round {number}")
        statuses, elapsed = send_concurrently(port, requests, clients)
        rates.append(statuses.count(expect) / elapsed)
        lost.append(len(requests) - statuses.count(expect))
    return rates, lost


def timed_get(port: int, path: str, headers: dict[str, str]) -> tuple[int, int, float]:
    """One GET on a fresh connection: its status, the bytes of its body as sent (chunk
    framing and compression included) and the seconds until the server closed."""
    began = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=START_SECONDS) as connection:
        connection.sendall(raw_request(port, "GET", path, headers=headers))
        received = bytearray()
        while chunk := connection.recv(262144):
            received += chunk
    elapsed = time.perf_counter() - began
    _head, _separator, body = bytes(received).partition(b"\r\n\r\n")
    return status_of(bytes(received)), len(body), elapsed
