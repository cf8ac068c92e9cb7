"""scripts/httpclient.py against a real loopback server."""

from __future__ import annotations

import socket
import time

import pytest

from tests.scripts.loopback import LoopbackServer
from tests.scripts_loader import load_script

httpclient = load_script("httpclient")


def test_requests_share_one_kept_alive_connection(loopback_server: LoopbackServer) -> None:
    with httpclient.Client("127.0.0.1", loopback_server.port, headers=httpclient.api_key_headers("k1")) as client:
        assert client.get("/healthz").status == 200
        answer = client.post_json("/api/v1/events/", {"events": [{"video_id": 1}, {"video_id": 2}]})
    assert (answer.status, answer.json()) == (202, {"accepted": 2})
    assert loopback_server.connections == 1
    post = loopback_server.requests[1]
    assert post.headers["Authorization"] == "Api-Key k1"
    assert post.headers["Content-Type"] == "application/json"


def test_a_connection_the_server_closed_meanwhile_is_reopened_once(loopback_server: LoopbackServer) -> None:
    loopback_server.drop_after_answer = True
    with httpclient.Client("127.0.0.1", loopback_server.port) as client:
        statuses = [client.get(f"/n/{i}").status for i in range(3)]
    assert statuses == [200, 200, 200]
    assert [r.path for r in loopback_server.requests] == ["/n/0", "/n/1", "/n/2"]  # each sent once
    assert loopback_server.connections == 3


def test_a_503_says_when_to_retry(loopback_server: LoopbackServer) -> None:
    loopback_server.unavailable = 1
    with httpclient.Client("127.0.0.1", loopback_server.port) as client:
        refused = client.post_json("/api/v1/events/", {"events": [{"video_id": 1}]})
        accepted = client.post_json("/api/v1/events/", {"events": [{"video_id": 1}]})
    assert (refused.status, refused.retry_after(), refused.headers["content-type"]) == (503, 1.0, "application/json")
    assert (accepted.status, accepted.retry_after()) == (202, None)


def test_no_server_is_a_transport_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        client = httpclient.Client("127.0.0.1", port, timeout=2)
        with pytest.raises(httpclient.TRANSPORT_ERRORS):
            client.get("/")


@pytest.mark.parametrize("url", ["https://127.0.0.1/", "http://10.0.0.1:8000/", "http://example.com/"])
def test_only_loopback_http(url: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        httpclient.loopback_address(url)
    with pytest.raises(ValueError, match="loopback"):
        httpclient.Client("10.0.0.1", 80)


def test_loopback_address() -> None:
    assert httpclient.loopback_address("http://127.0.0.1:8123/api/v1/events/") == ("127.0.0.1", 8123, "/api/v1/events/")
    assert httpclient.loopback_address("localhost:9000") == ("localhost", 9000, "/")


def test_schedule_keeps_each_send_time_when_the_sender_falls_behind() -> None:
    start = time.monotonic() + 0.05
    schedule = httpclient.Schedule(100.0, start=start, end=start + 1.0)
    first = schedule.next()
    assert first == start and time.monotonic() >= start  # slept until it was due
    time.sleep(0.2)  # a stalled request: 20 slots fall due meanwhile
    caught_up = [schedule.next() for _ in range(20)]
    assert caught_up == [start + n / 100.0 for n in range(1, 21)]  # handed out at once, times unchanged
    assert time.monotonic() - start < 0.3


def test_schedule_drains_late_slots_for_a_bounded_time_and_counts_the_rest() -> None:
    start = time.monotonic()
    schedule = httpclient.Schedule(100.0, start=start, end=start + 0.1, drain_s=0.1)
    time.sleep(0.15)  # past the end, inside the drain time: the 10 slots are still sent
    assert [schedule.next() for _ in range(3)] == [start, start + 0.01, start + 0.02]
    time.sleep(0.1)  # past the drain time
    assert schedule.next() is None
    assert schedule.unsent == 7


def test_closed_loop_schedule_is_now_until_the_end() -> None:
    start = time.monotonic() + 0.05
    schedule = httpclient.Schedule(None, start=start, end=start + 0.1)
    slot = schedule.next()
    assert slot is not None and slot >= start
    time.sleep(0.12)
    assert schedule.next() is None and schedule.unsent == 0
