"""Local HTTP receivers on 127.0.0.1 that record what is POSTed to them: webhook and ingestion stand-ins.

``behaviour`` decides each answer: ``ok`` (200), ``fail:N`` (503 for the first N requests, then 200),
``status:N`` (always N), ``hang`` (read the request, never answer until the receiver stops).
"""

from __future__ import annotations

import gzip
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def text(self) -> str:
        data = self.body
        if self.headers.get("content-encoding", "").lower() == "gzip":
            data = gzip.decompress(data)
        return data.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.text())

    def items(self) -> list[Any]:
        """A JSON array, or JSON lines (what the Application Insights ingestion endpoint takes)."""
        text = self.text().strip()
        try:
            data = json.loads(text)
        except ValueError:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        return data if isinstance(data, list) else [data]


class Receiver:
    def __init__(self, behaviour: str = "ok") -> None:
        self.behaviour = behaviour
        self.requests: list[Received] = []
        self.arrived = threading.Condition()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.arrived:
                    receiver.requests.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    count = len(receiver.requests)
                    receiver.arrived.notify_all()
                status = receiver._status(count)
                if status is None:
                    receiver._release.wait()
                    return
                answer = json.dumps(receiver._answer(body, self.headers)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _status(self, count: int) -> int | None:
        kind, _, arg = self.behaviour.partition(":")
        if kind == "hang":
            return None
        if kind == "fail":
            return 503 if count <= int(arg) else 200
        if kind == "status":
            return int(arg)
        return 200

    def _answer(self, body: bytes, headers: Any) -> dict[str, Any]:
        """What the Application Insights ingestion endpoint answers: every item accepted."""
        received = Received("", {k.lower(): v for k, v in headers.items()}, body)
        try:
            count = len(received.items())
        except (ValueError, OSError):
            count = 0
        return {"itemsReceived": count, "itemsAccepted": count, "errors": []}

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.requests) >= count, timeout)
            return list(self.requests)

    def stop(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
