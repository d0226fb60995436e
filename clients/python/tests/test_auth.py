"""Authentication and the Unix socket (protocol.md 16) against the real server: a
token file with a read-write and a read-only token, the errors without and with a
wrong token, reconnects that authenticate again, and connecting over ``unix:PATH``,
blocking and asyncio, and through the environment (``BUNIX``, ``BAUTHFILE``)."""

from __future__ import annotations

import asyncio
import os
import pathlib
import tempfile
from typing import Callable, Iterator

import pytest

import beuss
from tests.conftest import Server

RW = "py-rw-token-0123456789abcdef"
RO = "py-ro-token-fedcba9876543210"


@pytest.fixture
def token_file() -> Iterator[pathlib.Path]:
    fd, name = tempfile.mkstemp(prefix="beuss-py-tokens-")
    with os.fdopen(fd, "w") as f:
        f.write(f"# tokens\n{RW}\n{RO} ro\n")
    yield pathlib.Path(name)
    os.unlink(name)


@pytest.fixture
def socket_path() -> Iterator[str]:
    path = os.path.join(tempfile.gettempdir(), f"beuss-py-{os.getpid()}-{id(object())}.sock")
    yield path
    if os.path.exists(path):
        os.unlink(path)


def test_no_token_wrong_token_right_token(make_server: Callable[..., Server], token_file: pathlib.Path) -> None:
    server = make_server(BAUTHFILE=str(token_file))
    with beuss.Client(server.address) as c:
        assert c.server.has(beuss.FEATURE_AUTH_REQUIRED)
        c.ping()  # allowed before AUTH
        with pytest.raises(beuss.AuthRequired) as info:
            c.put("q", b"x")
        assert info.value.fatal and info.value.text == "authentication required"
    with pytest.raises(beuss.AuthFailed):
        beuss.Client(server.address, token="not-a-token-of-this-server")
    with beuss.Client(server.address, token=RW) as c:
        assert not c.read_only
        c.put("q", b"hello")
        assert c.get("q") == [b"hello"]
        assert c.stats().server["auth_failures"] == 1


def test_read_only_token_and_token_file(make_server: Callable[..., Server], token_file: pathlib.Path) -> None:
    server = make_server(BAUTHFILE=str(token_file))
    ro_file = token_file.with_suffix(".ro")
    ro_file.write_text(f"{RO} ro\n")
    try:
        with beuss.Client(server.address, token_file=ro_file) as c:
            assert c.read_only
            with pytest.raises(beuss.Forbidden) as info:
                c.put("q", b"x")
            assert not info.value.fatal
            c.ping()  # the connection goes on
            assert c.stats().server["forbidden"] == 1
    finally:
        ro_file.unlink()
    with beuss.Client(server.address, token_file=token_file) as c:  # first token: RW
        assert not c.read_only


def test_reconnect_authenticates_again(make_server: Callable[..., Server], token_file: pathlib.Path) -> None:
    server = make_server(BAUTHFILE=str(token_file))
    with beuss.Client(server.address) as c:
        assert not c.auth(RW)
        c.reconnect()
        c.put("q", b"after reconnect")
        assert c.get("q") == [b"after reconnect"]


def test_unix_socket_blocking_and_async(make_server: Callable[..., Server], socket_path: str) -> None:
    make_server(BUNIX=socket_path, BPORT="off")
    with beuss.Client(f"unix:{socket_path}") as c:
        c.put("q", b"over the socket")
        assert c.get("q") == [b"over the socket"]

    async def run() -> bytes:
        async with beuss.AsyncClient(f"unix:{socket_path}") as a:
            await a.put("q", b"async too")
            got = await a.get("q")
            return got[0]

    assert asyncio.run(run()) == b"async too"


def test_environment_picks_socket_and_token(
    make_server: Callable[..., Server], token_file: pathlib.Path, socket_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_server(BUNIX=socket_path, BAUTHFILE=str(token_file))
    monkeypatch.setenv("BUNIX", socket_path)
    monkeypatch.setenv("BAUTHFILE", str(token_file))
    monkeypatch.setenv("BPORT", "1")  # BUNIX wins
    with beuss.connect() as c:
        c.put("env", b"via BUNIX and BAUTHFILE")
        assert c.get("env") == [b"via BUNIX and BAUTHFILE"]

    async def run() -> None:
        async with beuss.AsyncClient() as a:
            assert await a.get("env") == []

    asyncio.run(run())
