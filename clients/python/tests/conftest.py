"""Test fixture: the real beuss-server on a free loopback port.

The binary is $BEUSS_SERVER, else <repo>/target/debug/beuss-server. The server is told
BPORT=0, and we read the port it got from its "listening on 127.0.0.1:PORT" log line
(bounded wait), keep draining its stderr so it never blocks on a full pipe, and kill it
by pid at teardown.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import threading
from typing import Callable, Dict, Iterator, List

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
LISTENING = re.compile(r"listening on (?:(127\.0\.0\.1):(\d+)|unix:)")
START_TIMEOUT = 10.0


def server_binary() -> str:
    path = os.environ.get("BEUSS_SERVER") or str(REPO / "target" / "debug" / "beuss-server")
    if not os.path.exists(path):
        pytest.fail(f"beuss-server not found at {path}: build it or set BEUSS_SERVER")
    return path


class Server:
    """A running beuss-server child."""

    def __init__(self, env: Dict[str, str]) -> None:
        full = dict(os.environ)
        full.update({"BHOST": "127.0.0.1", "BPORT": "0", "RUST_LOG": full.get("RUST_LOG", "info")})
        full.update(env)
        self.proc = subprocess.Popen(
            [server_binary()], env=full, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.logs: List[str] = []
        self._ready = threading.Event()
        self.port = 0
        self._listening = False
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        if not self._ready.wait(START_TIMEOUT) or not self._listening:
            self.stop()
            raise RuntimeError("beuss-server did not report its address:\n" + "".join(self.logs))
        self.host = "127.0.0.1"
        self.address = f"127.0.0.1:{self.port}"

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace")
            self.logs.append(line)
            if not self._ready.is_set():
                m = LISTENING.search(line)
                if m:
                    # BPORT=off: only a Unix socket, no port.
                    self.port = int(m.group(2)) if m.group(2) else 0
                    self._listening = True
                    self._ready.set()
        self._ready.set()  # the server exited: wake a waiting start

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self._reader.join(timeout=5)

    def terminate(self) -> None:
        """SIGTERM: the graceful stop (SHUTTING_DOWN to every connection)."""
        self.proc.terminate()


@pytest.fixture
def make_server() -> Iterator[Callable[..., Server]]:
    """A factory: ``make_server(BMAXMEMORY="64K")`` starts one with those settings."""
    started: List[Server] = []

    def make(**env: str) -> Server:
        s = Server(env)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def server(make_server: Callable[..., Server]) -> Server:
    """A server with default settings."""
    return make_server()


@pytest.fixture
def address(server: Server) -> str:
    return server.address
