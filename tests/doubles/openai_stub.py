"""A stub OpenAI-compatible chat-completions server on 127.0.0.1 for tests, with scripted failures.

    with OpenAIStub(answer=...) as stub:        # an ephemeral port, served from a thread
        backend = OpenAIBackend(stub.url, "stub-guard", timeout=0.3)

Behaviour per request is chosen by a marker in the last message's text: ``slow-once`` (the first
request sleeps past a short client timeout), ``500-once``, ``500-always``, ``400``; anything else is
answered at once with ``answer`` (a string, or a callable of the request body; a dict answer is
sent as the whole message, e.g. ``{"content": None}``). Setting ``healthy``
turns every scripted failure off. Requests are recorded (``requests``) and counted per marker
(``hits``). Only the loopback interface is ever bound.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MARKERS = ("slow-once", "500-once", "500-always", "400")


class OpenAIStub:
    """A chat-completions server whose behaviour per prompt is scripted by a marker in the user text."""

    def __init__(self, answer: Any, sleep_s: float = 1.0) -> None:
        self.sleep_s = sleep_s
        self.answer = answer
        self.healthy = False  # set True to turn every scripted failure off
        self.requests: list[dict] = []
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                marker = _marker(body)
                with stub.lock:
                    stub.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                    n = stub.hits[marker] = stub.hits.get(marker, 0) + 1
                if not stub.healthy:
                    if marker == "slow-once" and n == 1:
                        time.sleep(stub.sleep_s)
                    elif marker == "500-always" or (marker == "500-once" and n == 1):
                        return self._send(500, {"error": "boom"})
                    elif marker == "400":
                        return self._send(400, {"error": "bad request"})
                content = stub.answer(body) if callable(stub.answer) else stub.answer
                # a dict answer is the whole message (content None, reasoning_content...), anything else its content
                message = content if isinstance(content, dict) else {"role": "assistant", "content": content}
                self._send(200, {"choices": [{"message": message}]})

            def _send(self, code: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): nothing to answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OpenAIStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def last_text(body: dict[str, Any]) -> str:
    """The text of a request's last message (string content or text parts)."""
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content if p.get("type") == "text")


def _marker(body: dict[str, Any]) -> str:
    text = last_text(body)
    return next((m for m in MARKERS if m in text), "ok")
