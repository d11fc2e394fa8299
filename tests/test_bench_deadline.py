"""The OpenAI backend's bounds (issue 25): a total deadline per request, not per socket read; error
bodies read up to a cap. Servers here are loopback-only and stop on their own."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from proguard.bench.backends import MAX_ERROR_BYTES, GenerationFailed, GenerationSettings, OpenAIBackend
from proguard.bench.errors import BenchError

MESSAGES = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]


class LoopbackServer:
    """One-connection-at-a-time TCP server on 127.0.0.1 answering each request with ``respond(conn)``."""

    def __init__(self, respond) -> None:
        self.respond = respond
        self.stop = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.sent = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(65536)  # the request (small): its content is not needed
                    self.respond(self, conn)
                except OSError:
                    pass  # the client went away: what these tests want

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture
def server():
    made = []

    def start(respond) -> LoopbackServer:
        made.append(LoopbackServer(respond))
        return made[-1]

    yield start
    for s in made:
        s.close()


def drip(srv: LoopbackServer, conn: socket.socket) -> None:
    """A valid reply sent one byte per second (each socket read gets a byte well within any timeout)."""
    body = b'{"choices": [{"message": {"content": "slow"}}]}'
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    for byte in reply[:60]:  # bounded: at most a minute even for a client that never gives up
        if srv.stop.is_set():
            return
        conn.sendall(bytes([byte]))
        srv.sent += 1
        time.sleep(1.0)


def test_a_dripping_server_is_cut_off_at_the_request_deadline(server):
    srv = server(drip)
    backend = OpenAIBackend(srv.url, "m", timeout=2.0, max_retries=0)
    start = time.monotonic()
    [out] = backend.generate([(MESSAGES, None)])
    elapsed = time.monotonic() - start
    assert isinstance(out, GenerationFailed) and "within --timeout 2 s" in out.message
    assert elapsed < 5.0, elapsed  # one read timeout per byte would take the whole minute


def huge_error(srv: LoopbackServer, conn: socket.socket) -> None:
    size = 50_000_000
    conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: %d\r\n\r\n" % size)
    chunk = b"x" * 65536
    while srv.sent < size and not srv.stop.is_set():
        conn.sendall(chunk)
        srv.sent += len(chunk)


def test_an_error_body_is_read_only_up_to_its_cap(server):
    srv = server(huge_error)
    backend = OpenAIBackend(srv.url, "m", timeout=10.0, max_retries=0)
    [out] = backend.generate([(MESSAGES, None)])
    assert isinstance(out, GenerationFailed) and "HTTP 500 from" in out.message and len(out.message) < 1000
    time.sleep(0.5)  # let the server notice the closed connection
    assert srv.sent < 25_000_000, srv.sent  # the client stopped reading at MAX_ERROR_BYTES; buffers hold the rest
    assert MAX_ERROR_BYTES <= 1_000_000


@pytest.mark.parametrize("kwargs", [{"temperature": float("nan")}, {"temperature": float("inf")},
                                    {"top_p": float("nan")}, {"seed": 1.5}])
def test_sampling_settings_must_be_finite(kwargs):
    with pytest.raises(BenchError):
        GenerationSettings(**kwargs)


@pytest.mark.parametrize("kwargs", [{"timeout": float("inf")}, {"timeout": float("nan")},
                                    {"backoff_s": float("inf")}, {"concurrency": 0}])
def test_backend_options_must_be_finite_and_in_range(kwargs):
    with pytest.raises(BenchError):
        OpenAIBackend("http://127.0.0.1:9/v1", "m", **kwargs)


@pytest.mark.parametrize("url", ["http://[::1", "http://[::1]:99999/v1", "http://:80/v1", "ftp://h/v1"])
def test_a_malformed_base_url_is_a_bench_error(url):
    with pytest.raises(BenchError, match="base URL"):
        OpenAIBackend(url, "m")
