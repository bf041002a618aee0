"""The uvicorn protocol `artifactory serve` runs: a response's head leaves with its first body bytes
in one write; nothing is held past the event loop's current step, a close or a long write."""

import asyncio
import socket

import httpx
import pytest

from artifactory.http.protocol import HOLD_BYTES, _Joining


class Recording:
    def __init__(self):
        self.calls: list[tuple[str, list[bytes]]] = []
        self.closing = False

    def write(self, data):
        self.calls.append(("write", [bytes(data)]))

    def writelines(self, chunks):
        self.calls.append(("writelines", [bytes(c) for c in chunks]))

    def is_closing(self):
        return self.closing

    def close(self):
        self.calls.append(("close", []))
        self.closing = True

    def get_write_buffer_size(self):
        return 0

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


def test_head_and_body_leave_in_one_call_and_a_lone_write_at_the_end_of_the_step():
    async def scenario():
        real = Recording()
        joined = _Joining(real, asyncio.get_running_loop())
        joined.write(b"HTTP/1.1 200 OK\r\n\r\n")
        assert real.calls == [] and joined.get_write_buffer_size() == 19
        joined.write(b"body")
        assert real.calls == [("writelines", [b"HTTP/1.1 200 OK\r\n\r\n", b"body"])]
        await asyncio.sleep(0)  # the flush scheduled for the head finds nothing
        assert len(real.calls) == 1

        joined.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # nothing follows in this step
        await asyncio.sleep(0)
        assert real.calls[1] == ("write", [b"HTTP/1.1 100 Continue\r\n\r\n"])

        large = b"x" * (HOLD_BYTES + 1)
        joined.write(large)  # not held
        assert real.calls[2] == ("write", [large])

        joined.write(b"head")
        joined.close()  # what is held leaves first
        assert real.calls[3:] == [("write", [b"head"]), ("close", [])]
        joined.write(b"late")  # a closing transport's write is not held
        assert real.calls[5] == ("write", [b"late"])
        assert joined.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest is the transport's

    asyncio.run(scenario())


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_server_answers_whole_responses_on_one_connection(server, method):
    """Through the real server: answers of every shape (JSON, an empty HEAD, a 404 with a body)
    arrive whole and in order on one kept-alive connection."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for _ in range(3):
            ok = client.request(method, "/api/v1/status")
            assert ok.status_code == 200
            if method == "HEAD":
                assert ok.content == b""
            else:
                assert ok.json()["status"] == "ok"
            missing = client.request(method, "/repository/nope/x")
            assert missing.status_code == 404


def test_a_raw_socket_gets_the_head_and_body_together(server):
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk
            received += chunk
    head, body = received.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200") and body.startswith(b"{")
