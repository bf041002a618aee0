"""The built-in webhooks plugin: a real server (SQLite and PostgreSQL) POSTing to a real receiver on
loopback that succeeds, fails, hangs, or is down across a server restart."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import importlib.metadata
import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from artifactory_plugins.webhooks.config import Webhook, parse_webhooks
from artifactory_plugins.webhooks.delivery import Deliverer, signature
from artifactory_plugins.webhooks.outbox import DELIVERED, FAILED, PENDING, NewDelivery, Outbox
from sqlalchemy import create_engine, text

from artifactory.db.migrate import upgrade
from artifactory.settings import load_settings
from artifactory.testing.fixtures import drop_schema, new_schema
from artifactory.testing.server import LiveServer

SECRET_ALL = "all-secret-\u00e9"
SECRET_COMPONENTS = "components-secret"
FLAKY_FAILURES = 3
DOOMED_ATTEMPTS = 3


# -- the receiver ------------------------------------------------------------------------------
@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float

    @property
    def event(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server on loopback; what it answers depends on the path it is posted to."""

    requests: list[Received] = field(default_factory=list)
    down: bool = False  # /later answers 503 while set
    release: threading.Event = field(default_factory=threading.Event)  # ends every /hang wait
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, path: str, body: bytes) -> int:
        if path.startswith("/flaky"):
            # By event id: delivery ids (row ids) repeat between the SQLite and the PostgreSQL server.
            event_id = json.loads(body)["id"]
            seen = sum(1 for r in self.requests if r.path == path and r.event["id"] == event_id)
            return 500 if seen < FLAKY_FAILURES else 204
        if path.startswith("/doomed"):
            return 500
        if path.startswith("/later"):
            return 503 if self.down else 200
        return 200

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, path: str, done, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.at(path)
            if done(got):
                return got
            time.sleep(0.05)
        got = [(r.event["event"], r.status) for r in self.at(path)]
        raise AssertionError(f"timed out waiting at {path}; got {got}")


def start_receiver() -> tuple[Receiver, ThreadingHTTPServer]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            if self.path.startswith("/hang"):
                with receiver.lock:  # recorded on arrival: the server gives up long before the answer
                    receiver.requests.append(Received(self.path, headers, body, 0, time.monotonic()))
                receiver.release.wait(5)
                return
            with receiver.lock:
                status = receiver.answer(self.path, body)
                receiver.requests.append(Received(self.path, headers, body, status, time.monotonic()))
            try:
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"no" if status >= 300 else b"ok")
            except OSError:
                pass  # the server gave up waiting

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    receiver.port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return receiver, httpd


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    found, httpd = start_receiver()
    try:
        yield found
    finally:
        found.release.set()
        httpd.shutdown()
        httpd.server_close()


# -- the server ----------------------------------------------------------------------------------
class HookServer(LiveServer):
    db_url: str


def webhooks_config(receiver: Receiver) -> list[dict]:
    fast = {"backoff_seconds": 0.2, "backoff_max_seconds": 0.5}
    return [
        {"name": "all", "url": receiver.url("/all"), "secret": SECRET_ALL, "repositories": ["sig-*"]},
        {
            "name": "components",
            "url": receiver.url("/components"),
            "secret": SECRET_COMPONENTS,
            "events": ["component.*"],
            "repositories": "sig-*",
        },
        {
            "url": receiver.url("/flaky"),
            "secret": "s",
            "events": "asset.stored",
            "repositories": "flaky-*",
            **fast,
        },
        {
            "url": receiver.url("/doomed"),
            "secret": "s",
            "events": "asset.stored",
            "repositories": ["doomed-*"],
            "max_attempts": DOOMED_ATTEMPTS,
            **fast,
        },
        {
            "url": receiver.url("/hang"),
            "secret": "s",
            "events": ["asset.stored"],
            "repositories": ["hang-*"],
            # Long enough that waiting for it in the request path (20 x 3 s) could not pass the test.
            "timeout_seconds": 3,
            **fast,
        },
        {"url": receiver.url("/fast"), "secret": "s", "events": "asset.stored", "repositories": "fast-*"},
        {"url": receiver.url("/later"), "secret": "s", "events": "asset.*", "repositories": "later-*"} | fast,
    ]


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
def hook_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, receiver: Receiver
) -> Iterator[HookServer]:
    # The plugin is built in (the entry point); nothing names it in ARTIFACTORY_PLUGINS. Two worker
    # processes both run a delivery loop, so "exactly once" below also means "not once per process".
    env = {"ARTIFACTORY_WEBHOOKS": json.dumps(webhooks_config(receiver))}
    root = tmp_path_factory.mktemp(f"webhooks-{request.param}")
    schema = ""
    if request.param == "postgresql":
        base = request.getfixturevalue("pg_base_url")
        schema, url = new_schema(base)
        live = HookServer(root / "data", database_url=url, env=env, workers=2)
        live.db_url = url
    else:
        live = HookServer(root / "data", env=env, workers=2)
        live.db_url = f"sqlite:///{root / 'data' / 'artifactory.db'}"
    live.start()
    try:
        yield live
    finally:
        live.stop()
        if schema:
            drop_schema(request.getfixturevalue("pg_base_url"), schema)


def outbox_rows(server: HookServer, webhook: str, repository: str) -> list[dict]:
    """The outbox rows of one webhook for events of one repository, read from the server's database."""
    engine = create_engine(server.db_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT * FROM webhook_delivery WHERE webhook = :w ORDER BY id"), {"w": webhook}
            )
            found = [dict(r._mapping) for r in rows]
    finally:
        engine.dispose()
    return [r for r in found if json.loads(r["payload"])["repository"]["name"] == repository]


def verified(received: Received, secret: str) -> dict:
    """The event, after checking the signature exactly as docs/webhooks.md tells receivers to."""
    expected = "sha256=" + hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(received.headers["x-artifactory-signature"], expected)
    event = received.event
    assert received.headers["x-artifactory-event"] == event["event"]
    assert received.headers["x-artifactory-delivery"].isdigit()
    assert received.headers["content-type"] == "application/json"
    return event


# -- end to end ------------------------------------------------------------------------------------
def test_webhooks_plugin_is_registered_through_the_entry_point():
    found = {e.name: e.value for e in importlib.metadata.entry_points(group="artifactory")}
    assert found.get("webhooks") == "artifactory_plugins.webhooks.plugin"


def test_events_arrive_signed_with_each_webhooks_secret_and_filtered(hook_server, receiver):
    repo = hook_server.create_repo("raw", name=f"sig-{uuid.uuid4().hex[:8]}")
    other = hook_server.create_repo("raw", name=f"nomatch-{uuid.uuid4().hex[:8]}")
    data = b"hello webhooks"
    with hook_server.client() as admin:
        assert admin.put(f"/repository/{repo}/dir/a.txt", content=data).status_code == 201
        assert admin.put(f"/repository/{other}/b.txt", content=b"other").status_code == 201
        assert admin.delete(f"/repository/{repo}/dir/a.txt").status_code in (200, 204)
        assert admin.delete(f"/api/v1/repositories/{repo}").status_code == 204

    def mine(got: list[Received]) -> list[Received]:
        return [r for r in got if r.event["repository"]["name"] in (repo, other)]

    wanted = {
        "repository.created",
        "asset.stored",
        "component.stored",
        "asset.deleted",
        "component.deleted",
        "repository.deleted",
    }
    got = receiver.wait_for("/all", lambda g: {r.event["event"] for r in mine(g)} >= wanted)
    events = {e["event"]: e for e in (verified(r, SECRET_ALL) for r in mine(got))}
    assert set(events) == wanted  # nothing from the repository no webhook matches
    assert len(mine(got)) == len(wanted)  # each once
    assert len({e["id"] for e in events.values()}) == len(wanted)

    stored = events["asset.stored"]
    assert stored["repository"] == {"name": repo, "format": "raw"}
    sha256 = hashlib.sha256(data).hexdigest()
    assert stored["asset"] == {"path": "dir/a.txt", "sha256": sha256, "size": len(data)}
    assert stored["actor"] == "admin"
    assert stored["at"].endswith("Z")
    assert stored["component"] == {"namespace": "", "name": "dir/a.txt", "version": ""}
    assert events["asset.deleted"]["asset"]["path"] == "dir/a.txt"
    assert events["repository.created"]["repository"] == {"name": repo, "format": "raw", "type": "hosted"}
    assert events["repository.deleted"]["repository"]["name"] == repo

    # A second webhook with its own secret and an event filter gets component events only.
    comp = receiver.wait_for("/components", lambda g: len(mine(g)) >= 2)
    time.sleep(0.5)
    comp = mine(receiver.at("/components"))
    kinds = sorted(verified(r, SECRET_COMPONENTS)["event"] for r in comp)
    assert kinds == ["component.deleted", "component.stored"]
    # Signed with the other webhook's secret, they would not verify.
    with pytest.raises(AssertionError):
        verified(comp[0], SECRET_ALL)


def test_component_events_carry_the_formats_coordinates(hook_server, receiver):
    repo = hook_server.create_repo("maven", name=f"sig-mvn-{uuid.uuid4().hex[:8]}")
    path = "com/acme/widget/1.2.3/widget-1.2.3.jar"
    with hook_server.client() as admin:
        assert admin.put(f"/repository/{repo}/{path}", content=b"jar bytes").status_code == 201
    got = receiver.wait_for("/components", lambda g: any(r.event["repository"]["name"] == repo for r in g))
    event = verified(next(r for r in got if r.event["repository"]["name"] == repo), SECRET_COMPONENTS)
    assert event["event"] == "component.stored"
    assert event["component"] == {"namespace": "com.acme", "name": "widget", "version": "1.2.3"}
    assert event["asset"]["path"] == path


def test_a_failing_receiver_gets_the_event_exactly_once_after_it_recovers(hook_server, receiver):
    repo = hook_server.create_repo("raw", name=f"flaky-{uuid.uuid4().hex[:8]}")
    with hook_server.client() as admin:
        assert admin.put(f"/repository/{repo}/f.txt", content=b"flaky").status_code == 201

    def ours(got: list[Received]) -> list[Received]:
        return [r for r in got if r.event["repository"]["name"] == repo]

    receiver.wait_for("/flaky", lambda g: any(r.status == 204 for r in ours(g)))
    time.sleep(2.0)  # several backoff periods: nothing more may come
    got = ours(receiver.at("/flaky"))
    assert [r.status for r in got] == [500] * FLAKY_FAILURES + [204]
    assert len({r.headers["x-artifactory-delivery"] for r in got}) == 1  # the same delivery retried
    assert len({r.body for r in got}) == 1
    for r in got:
        verified(r, "s")
    gaps = [b.at - a.at for a, b in zip(got, got[1:], strict=False)]
    assert all(gap >= 0.15 for gap in gaps), gaps  # backoff, not a tight loop
    [row] = outbox_rows(hook_server, receiver.url("/flaky"), repo)
    assert row["status"] == DELIVERED
    assert row["attempts"] == FLAKY_FAILURES + 1
    assert row["last_status"] == 204


def test_a_delivery_that_keeps_failing_is_marked_failed_after_its_attempts(hook_server, receiver):
    repo = hook_server.create_repo("raw", name=f"doomed-{uuid.uuid4().hex[:8]}")
    with hook_server.client() as admin:
        assert admin.put(f"/repository/{repo}/d.txt", content=b"doomed").status_code == 201

    def row() -> dict | None:
        found = outbox_rows(hook_server, receiver.url("/doomed"), repo)
        return found[0] if found else None

    deadline = time.monotonic() + 30
    while (current := row()) is None or current["status"] == PENDING:
        assert time.monotonic() < deadline, current
        time.sleep(0.1)
    assert current["status"] == FAILED
    assert current["attempts"] == DOOMED_ATTEMPTS
    assert current["last_status"] == 500
    assert "HTTP 500" in current["last_error"]
    time.sleep(1.0)
    got = [r for r in receiver.at("/doomed") if r.event["repository"]["name"] == repo]
    assert len(got) == DOOMED_ATTEMPTS


def test_a_hanging_receiver_does_not_slow_uploads(hook_server, receiver):
    fast = hook_server.create_repo("raw", name=f"fast-{uuid.uuid4().hex[:8]}")
    hang = hook_server.create_repo("raw", name=f"hang-{uuid.uuid4().hex[:8]}")

    def twenty(repo: str) -> float:
        with hook_server.client() as admin:
            admin.get("/api/v1/status")  # connection up before the clock starts
            started = time.monotonic()
            for i in range(20):
                response = admin.put(f"/repository/{repo}/f{i}.bin", content=uuid.uuid4().bytes * 64)
                assert response.status_code == 201, response.text
            return time.monotonic() - started

    baseline = twenty(fast)
    receiver.wait_for("/fast", lambda g: sum(r.event["repository"]["name"] == fast for r in g) >= 20)
    hanging = twenty(hang)
    # The hanging receiver really was being called (and held) while the uploads ran.
    receiver.wait_for("/hang", lambda g: any(r.event["repository"]["name"] == hang for r in g), timeout=15)
    assert hanging < baseline * 3 + 1.0, (hanging, baseline)
    with hook_server.client() as admin:
        assert admin.get(f"/repository/{hang}/f19.bin").status_code == 200


def test_undelivered_events_survive_a_server_restart(hook_server, receiver):
    repo = hook_server.create_repo("raw", name=f"later-{uuid.uuid4().hex[:8]}")
    receiver.down = True
    try:
        with hook_server.client() as admin:
            for i in range(3):
                assert admin.put(f"/repository/{repo}/r{i}.txt", content=b"r%d" % i).status_code == 201
        hook_server.restart()  # at once: some events may still be spooled, none delivered
    finally:
        receiver.down = False

    def delivered(got: list[Received]) -> list[Received]:
        return [r for r in got if r.status == 200 and r.event["repository"]["name"] == repo]

    try:
        receiver.wait_for("/later", lambda g: len(delivered(g)) >= 3)
    except AssertionError as exc:  # say what held the rest back: a lease, a retry, or nothing at all
        now = time.time()
        rows = [
            (r["status"], r["attempts"], r["lease"], round(r["due_at"] - now, 1))
            for r in outbox_rows(hook_server, receiver.url("/later"), repo)
        ]
        raise AssertionError(f"{exc}; outbox (status, attempts, lease, due in s): {rows}") from None
    time.sleep(1.0)
    ok = delivered(receiver.at("/later"))
    assert sorted(r.event["asset"]["path"] for r in ok) == ["r0.txt", "r1.txt", "r2.txt"]  # each exactly once


# -- units: configuration --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"secret": "s"}, "url is required"),
        ({"url": "ftp://host/x", "secret": "s"}, "absolute http or https URL"),
        ({"url": "http://h/x"}, "secret is required"),
        ({"url": "http://h/x", "secret": "s", "events": ["asset.store"]}, "matches no event"),
        ({"url": "http://h/x", "secret": "s", "events": []}, "non-empty list"),
        ({"url": "http://h/x", "secret": "s", "timeout_seconds": 0}, "greater than zero"),
        ({"url": "http://h/x", "secret": "s", "max_attempts": 2.5}, "whole number"),
        ({"url": "http://h/x", "secret": "s", "retries": 3}, "unknown field 'retries'"),
        ("http://h/x", "must be an object"),
    ],
)
def test_malformed_webhooks_are_refused_with_the_field_named(config, message):
    with pytest.raises(ValueError, match=message):
        parse_webhooks([config])


def test_two_webhooks_with_one_name_are_refused():
    hook = {"url": "http://h/x", "secret": "s"}
    with pytest.raises(ValueError, match="unique name"):
        parse_webhooks([hook, hook])


def test_a_server_with_a_malformed_webhook_refuses_to_start(tmp_path):
    live = LiveServer(tmp_path / "data", env={"ARTIFACTORY_WEBHOOKS": '[{"url": "http://127.0.0.1:9/"}]'})
    with pytest.raises(RuntimeError, match="secret is required"):
        live.start(timeout=20)


def test_webhooks_come_from_a_json_environment_variable_and_lists_stay_comma_separated(monkeypatch):
    hooks = [{"url": "http://h/x", "secret": "a,b", "events": ["asset.stored", "component.*"]}]
    monkeypatch.setenv("ARTIFACTORY_WEBHOOKS", json.dumps(hooks))
    monkeypatch.setenv("ARTIFACTORY_TRUSTED_PROXIES", "[::1],10.0.0.1")
    monkeypatch.delenv("ARTIFACTORY_SETTINGS_JSON", raising=False)
    settings = load_settings()
    assert settings.webhooks == hooks
    assert settings.trusted_proxies == ["[::1]", "10.0.0.1"]
    [hook] = parse_webhooks(settings.webhooks)
    assert hook.name == "http://h/x"
    assert hook.wants("component.deleted", "any") and not hook.wants("asset.deleted", "any")


def test_webhooks_come_from_the_config_file(tmp_path, monkeypatch):
    monkeypatch.delenv("ARTIFACTORY_SETTINGS_JSON", raising=False)
    monkeypatch.delenv("ARTIFACTORY_WEBHOOKS", raising=False)
    config = tmp_path / "artifactory.toml"
    config.write_text(
        '[[webhooks]]\nname = "ci"\nurl = "https://ci.internal/hook"\nsecret = "x"\n'
        'events = ["repository.*"]\nrepositories = ["release-*"]\n'
    )
    [hook] = parse_webhooks(load_settings(config).webhooks)
    assert hook.name == "ci" and hook.wants("repository.created", "release-1")
    assert not hook.wants("repository.created", "snapshot-1")


def test_backoff_doubles_up_to_its_cap():
    hook = Webhook(name="n", url="http://h/", secret="s", backoff_seconds=10, backoff_max_seconds=60)
    delays = [hook.backoff(n) for n in range(1, 8)]
    for got, want in zip(delays, [10, 20, 40, 60, 60, 60, 60], strict=True):
        assert want * 0.9 <= got <= want
    assert hook.backoff(10_000) <= 60


def test_signature_is_the_hex_hmac_sha256_of_the_body():
    body = b'{"event":"asset.stored"}'
    assert signature("k", body) == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()


# -- units: the outbox on both databases -------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def outbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outbox]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'o.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    upgrade(url)
    from artifactory.db.engine import Database

    db = Database(url)
    try:
        yield Outbox(db.engine, db.read_engine)
    finally:
        db.dispose()


def test_each_row_is_claimed_by_one_claimer_at_a_time(outbox):
    now = time.time()
    outbox.add([NewDelivery("w", "asset.stored", f'{{"n":{i}}}') for i in range(40)], now)
    ids = [row_id for row_id, _ in outbox.due({"w"}, now, 100)]
    assert len(ids) == 40

    with ThreadPoolExecutor(4) as pool:
        claims = list(pool.map(lambda _: outbox.claim(ids, now, 60), range(4)))
    claimed = [c.id for batch in claims for c in batch]
    assert sorted(claimed) == sorted(ids)  # every row once, none twice
    assert outbox.due({"w"}, now + 59, 100) == []  # leased
    stale = claims[0] + claims[1] + claims[2] + claims[3]
    # After the lease runs out another claimer may take a row; the old holder can no longer finish it.
    again = outbox.claim([stale[0].id], now + 61, 60)
    assert [c.id for c in again] == [stale[0].id] and again[0].attempts == 2
    assert outbox.delivered(stale[0], now + 62, 200) is False
    assert outbox.delivered(again[0], now + 62, 200) is True
    # A process that stops mid-delivery hands its rows back, due at once, not after the lease.
    outbox.release(stale[1:3], now + 1)
    assert sorted(i for i, _ in outbox.due({"w"}, now + 1, 100)) == sorted(c.id for c in stale[1:3])
    assert outbox.retry(stale[1], now + 5, 500, "late") is False


def test_prune_drops_old_finished_rows_and_keeps_pending_ones(outbox):
    now = time.time()
    outbox.add([NewDelivery("w", "asset.stored", "{}") for _ in range(3)], now - 100)
    rows = outbox.claim([i for i, _ in outbox.due({"w"}, now, 10)], now, 60)
    outbox.delivered(rows[0], now - 50, 200)
    outbox.failed(rows[1], now - 50, 500, "HTTP 500")
    outbox.retry(rows[2], now + 10, None, "refused")
    assert outbox.prune(delivered_before=now - 60, failed_before=now - 60, pending_before=now - 200) == 0
    assert outbox.prune(delivered_before=now, failed_before=now - 60, pending_before=now - 200) == 1
    assert outbox.prune(delivered_before=now, failed_before=now, pending_before=now - 200) == 1
    assert [i for i, _ in outbox.due({"w"}, now + 10, 10)] == [rows[2].id]  # still pending


# -- units: a stopping process settles every row it leased ------------------------------------------
class GatedOutbox(Outbox):
    """An outbox whose first claim that takes rows (gate "claim") waits after committing, or whose
    first outcome write (gate "outcome") waits before writing, until `go` is set: the worker thread a
    stopping process must not overlook."""

    def __init__(self, outbox: Outbox, gate: str) -> None:
        super().__init__(outbox.engine, outbox.read_engine)
        self.gate = gate
        self.inside = threading.Event()
        self.go = threading.Event()

    def _hold(self) -> None:
        if not self.inside.is_set():
            self.inside.set()
            assert self.go.wait(10)

    def claim(self, ids, now, lease_seconds):
        rows = super().claim(ids, now, lease_seconds)
        if self.gate == "claim" and rows:
            self._hold()
        return rows

    def _finish(self, claimed, **values):
        if self.gate == "outcome":
            self._hold()
        return super()._finish(claimed, **values)


def stop_while_held(gated: GatedOutbox, url: str) -> int:
    """Run a Deliverer until the gated write is under way, then stop it as Runtime.stop() does (cancel,
    then release on the event loop's thread); the gated thread goes on 0.3 s later. Returns release()."""

    async def scenario() -> int:
        deliverer = Deliverer(gated, {"w": Webhook(name="w", url=url, secret="s")})
        task = asyncio.create_task(deliverer.run())
        deadline = time.monotonic() + 20
        while not gated.inside.is_set():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        task.cancel()
        opener = threading.Timer(0.3, gated.go.set)
        opener.start()
        try:
            return deliverer.release()
        finally:
            opener.join()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return asyncio.run(scenario())


def test_a_claim_still_committing_when_the_process_stops_is_handed_back(outbox, receiver):
    now = time.time()
    outbox.add([NewDelivery("w", "asset.stored", '{"id":"x"}')], now)
    gated = GatedOutbox(outbox, "claim")
    path = f"/unit-claim-{uuid.uuid4().hex[:8]}"
    assert stop_while_held(gated, receiver.url(path)) == 1
    # Due at once with no lease, not a lease (timeout + 30 s) ahead that the next process waits out.
    [row_id] = [i for i, _ in outbox.due({"w"}, time.time(), 10)]
    [again] = outbox.claim([row_id], time.time(), 60)
    assert again.attempts == 2
    assert receiver.at(path) == []  # never posted: the claim was not handed to a delivery


def test_a_delivery_the_receiver_took_is_recorded_not_handed_back_at_shutdown(outbox, receiver):
    outbox.add([NewDelivery("w", "asset.stored", '{"id":"y"}')], time.time())
    gated = GatedOutbox(outbox, "outcome")
    path = f"/unit-outcome-{uuid.uuid4().hex[:8]}"
    assert stop_while_held(gated, receiver.url(path)) == 1
    assert [r.status for r in receiver.at(path)] == [200]
    assert outbox.due({"w"}, time.time() + 3600, 10) == []  # nothing left to send again
    with outbox.engine.connect() as connection:
        status, lease = connection.execute(text("SELECT status, lease FROM webhook_delivery")).one()
    assert (status, lease) == (DELIVERED, None)
