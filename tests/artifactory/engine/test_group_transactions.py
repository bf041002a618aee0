"""What a cold miss through a group costs in database transactions, counted (not timed) on SQLite
and PostgreSQL: a file and a computed index document (PyPI simple page, npm packument, Maven
maven-metadata.xml) that only the group's proxy member's upstream has, asked through a group of
(hosted, proxy), cost at most 3, as a proxy's own cold miss does.

Each request goes through the whole in-process application (repository snapshots, the read check,
the format's route, the engine), and the proxy's background commit is waited for inside the count.
Two counts: `transactions` (test_write_path's: begins on every engine plus the hot path's asset
lookups) and every pooled connection checked out on any engine (which also sees the raw reads the
first does not, such as the dependency-confusion guard's)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from sqlalchemy import event

from artifactory.app import Application
from tests.artifactory.engine.test_write_path import settled, transactions
from tests.artifactory.repository.upstream import running
from tests.formats.maven.support import jar_bytes, pom_xml
from tests.formats.npm.helpers import integrity, tarball
from tests.formats.pypi.dists import wheel_bytes
from tests.formats.pypi.fake_index import FakeFile, FakeIndex

MOST = 3


@contextmanager
def checkouts(state) -> Iterator[dict[str, int]]:
    """Every connection checked out of any of the database's pools while the block runs."""
    counted = {"checkout": 0}
    lock = threading.Lock()

    def listener(*_args) -> None:
        with lock:
            counted["checkout"] += 1

    engines = {id(e): e for e in (state.db.engine, state.db.lazy_engine, state.db.read_engine)}.values()
    for engine in engines:
        event.listen(engine.pool, "checkout", listener)
    try:
        yield counted
    finally:
        for engine in engines:
            event.remove(engine.pool, "checkout", listener)


def create(state, fmt: str, kind: str, **config) -> str:
    name = f"{fmt[:2]}{kind[0]}{os.urandom(3).hex()}"
    state.engine.repos.create({"name": name, "format": fmt, "type": kind, **config})
    return name


def group_of(state, fmt: str, url: str) -> str:
    hosted = create(state, fmt, "hosted")
    proxy = create(state, fmt, "proxy", url=url)
    return create(state, fmt, "group", members=[hosted, proxy])


class Counter:
    """Requests through the in-process application, each one's transactions counted."""

    def __init__(self, state) -> None:
        self.state = state
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=Application(state)), base_url="http://testserver"
        )
        self.counts: dict[str, tuple[dict[str, int], dict[str, int]]] = {}

    async def get(self, url: str, **headers: str) -> httpx.Response:
        response = await self.client.get(url, headers=headers)
        await settled(self.state)
        return response

    async def cold(self, label: str, url: str, **headers: str) -> httpx.Response:
        self.state.engine.proxy._health.clear()  # the worst case: this process's health copy expired
        with transactions(self.state) as counted, checkouts(self.state) as pooled:
            response = await self.client.get(url, headers=headers)
            await settled(self.state)
        self.counts[label] = (counted, pooled)
        return response

    def over(self, **most: int) -> dict[str, tuple[dict[str, int], dict[str, int]]]:
        """The cold misses that cost more than MOST (or `most[label]`), by either count."""
        return {
            label: (counted, pooled)
            for label, (counted, pooled) in self.counts.items()
            if max(counted["begin"] + counted["lookup"], pooled["checkout"]) > most.get(label, MOST)
        }


def listening(state) -> None:
    """As in a running server: the change watcher started, PostgreSQL's listener connected (until
    then every snapshot is checked with a read of its revision, whatever the request)."""
    changes = state.engine.repos.changes
    changes.start()
    deadline = time.monotonic() + 10
    while not isinstance(changes.token(), int | tuple) and time.monotonic() < deadline:
        time.sleep(0.05)


def measured(state, scenario) -> Counter:
    listening(state)
    # Counted, not timed: a snapshot that outlives its lifetime on a loaded machine (one second) is
    # read again, which is no cost of the request being counted. Commits still move the token.
    state.engine.repos.cache_seconds = 3600
    counter = Counter(state)

    async def run() -> None:
        try:
            await scenario(counter)
        finally:
            await counter.client.aclose()
            await state.engine.close()

    try:
        asyncio.run(run())
    finally:
        state.engine.repos.close()
    for label, (counted, pooled) in counter.counts.items():
        print(f"\n{state.db.engine.dialect.name} {label}: {counted} {pooled}", flush=True)
    return counter


def test_a_raw_file_cold_miss_through_a_group_costs_at_most_three_and_a_miss_is_remembered(state):
    """A file the upstream has: 3. A file it has not: 3 too (formats/raw answers a folder path with
    its listing: whether one of that name exists comes with the miss's read of every leaf). A
    folder asked without its "/" is still sent to its listing, through the group."""
    with running() as upstream:
        upstream.put("lib/one.bin", os.urandom(5000))
        upstream.put("lib/two.bin", os.urandom(5000))
        group = group_of(state, "raw", upstream.url)

        async def scenario(counter: Counter) -> None:
            assert (await counter.get(f"/repository/{group}/lib/warm.bin")).status_code == 404
            response = await counter.cold("raw file", f"/repository/{group}/lib/one.bin")
            assert response.status_code == 200 and response.content == upstream.files["lib/one.bin"]
            response = await counter.cold("raw miss", f"/repository/{group}/lib/none.bin")
            assert response.status_code == 404
            response = await counter.cold("raw miss remembered", f"/repository/{group}/lib/none.bin")
            assert response.status_code == 404
            folder = await counter.get(f"/repository/{group}/lib")  # lib/one.bin is cached in the proxy
            assert folder.status_code == 301 and folder.headers["location"].endswith(f"/{group}/lib/")

        counter = measured(state, scenario)
        assert upstream.count("lib/none.bin") == 1
    assert counter.over() == {}, counter.counts


def test_a_pypi_page_and_wheel_cold_miss_through_a_group_cost_at_most_three_each(state):
    wheel = FakeFile("up_lib-1.0-py3-none-any.whl", wheel_bytes("up-lib", "1.0"), version="1.0")
    other = FakeFile("up_lib-1.1-py3-none-any.whl", wheel_bytes("up-lib", "1.1"), version="1.1")
    index = FakeIndex(projects={"up-lib": [wheel, other]}).start()
    try:
        group = group_of(state, "pypi", index.index_url)

        async def scenario(counter: Counter) -> None:
            warm = await counter.get(f"/repository/{group}/simple/warm/")
            assert warm.status_code == 404
            page = await counter.cold(
                "pypi simple page", f"/repository/{group}/simple/up-lib/", Accept="text/html"
            )
            assert page.status_code == 200 and wheel.filename in page.text
            warm = await counter.cold("pypi simple page warm", f"/repository/{group}/simple/up-lib/")
            assert warm.status_code == 200 and wheel.filename in warm.text
            response = await counter.cold(
                "pypi wheel", f"/repository/{group}/packages/up-lib/{wheel.filename}"
            )
            assert response.status_code == 200 and response.content == wheel.content
            # As in another worker, which has not read the page itself: the probe finds its copy.
            counter.state.engine.index._fresh.clear()
            counter.state.engine.index._parsed.clear()
            response = await counter.cold(
                "pypi wheel, page read by another process",
                f"/repository/{group}/packages/up-lib/{other.filename}",
            )
            assert response.status_code == 200 and response.content == other.content
            missing = await counter.cold("pypi page miss", f"/repository/{group}/simple/nothing-here/")
            assert missing.status_code == 404

        counter = measured(state, scenario)
        assert index.fetched(wheel.filename) == 1
    finally:
        index.stop()
    # A warm page through the group is answered from this process's caches: no read at all.
    assert counter.over(**{"pypi simple page warm": 0}) == {}, counter.counts


def test_an_npm_packument_and_tarball_cold_miss_through_a_group_cost_at_most_three_each(state):
    with running() as upstream:
        data = tarball("up-lib", "1.0.0")
        packument = {
            "name": "up-lib",
            "dist-tags": {"latest": "1.0.0"},
            "versions": {
                "1.0.0": {
                    "name": "up-lib",
                    "version": "1.0.0",
                    "dist": {
                        "tarball": f"{upstream.url}up-lib/-/up-lib-1.0.0.tgz",
                        "integrity": integrity(data),
                        "shasum": hashlib.sha1(data).hexdigest(),
                    },
                }
            },
        }
        upstream.put("up-lib", json.dumps(packument).encode())
        upstream.put("up-lib/-/up-lib-1.0.0.tgz", data)
        group = group_of(state, "npm", upstream.url)

        async def scenario(counter: Counter) -> None:
            assert (await counter.get(f"/repository/{group}/warm-lib")).status_code == 404
            response = await counter.cold("npm packument", f"/repository/{group}/up-lib")
            assert response.status_code == 200 and "1.0.0" in response.json()["versions"]
            response = await counter.cold("npm tarball", f"/repository/{group}/up-lib/-/up-lib-1.0.0.tgz")
            assert response.status_code == 200 and response.content == data
            assert (
                await counter.cold("npm packument miss", f"/repository/{group}/no-lib")
            ).status_code == 404

        counter = measured(state, scenario)
        assert upstream.count("up-lib/-/up-lib-1.0.0.tgz") == 1
    assert counter.over() == {}, counter.counts


def test_maven_metadata_and_files_cold_miss_through_a_group_cost_at_most_three_each(state):
    with running() as upstream:
        folder = "org/example/lib"
        jar, pom = jar_bytes({"a.txt": b"a"}), pom_xml("org.example", "lib", "1.0")
        metadata = (
            b"<metadata><groupId>org.example</groupId><artifactId>lib</artifactId><versioning>"
            b"<latest>1.0</latest><release>1.0</release><versions><version>1.0</version></versions>"
            b"<lastUpdated>20260101000000</lastUpdated></versioning></metadata>"
        )
        upstream.put(f"{folder}/maven-metadata.xml", metadata)
        for path, body in ((f"{folder}/1.0/lib-1.0.jar", jar), (f"{folder}/1.0/lib-1.0.pom", pom)):
            upstream.put(path, body)
            upstream.put(path + ".sha1", hashlib.sha1(body).hexdigest().encode())
        group = group_of(state, "maven", upstream.url)

        async def scenario(counter: Counter) -> None:
            assert (
                await counter.get(f"/repository/{group}/org/example/warm/1.0/warm-1.0.pom")
            ).status_code == 404
            response = await counter.cold(
                "maven metadata", f"/repository/{group}/{folder}/maven-metadata.xml"
            )
            assert response.status_code == 200 and b"<version>1.0</version>" in response.content
            warm = await counter.cold(
                "maven metadata warm", f"/repository/{group}/{folder}/maven-metadata.xml"
            )
            assert warm.status_code == 200 and warm.content == response.content
            response = await counter.cold("maven pom", f"/repository/{group}/{folder}/1.0/lib-1.0.pom")
            assert response.status_code == 200 and response.content == pom
            response = await counter.cold("maven jar", f"/repository/{group}/{folder}/1.0/lib-1.0.jar")
            assert response.status_code == 200 and response.content == jar
            missing = f"/repository/{group}/{folder}/1.0/lib-1.0-sources.jar"
            assert (await counter.cold("maven miss", missing)).status_code == 404
            assert (await counter.cold("maven miss remembered", missing)).status_code == 404

        counter = measured(state, scenario)
        assert upstream.count(f"{folder}/1.0/lib-1.0.jar") == 1
    assert counter.over(**{"maven metadata warm": 0}) == {}, counter.counts


pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def test_a_hosted_deploy_after_a_cold_miss_through_a_group_replaces_the_proxys_metadata(state):
    """A group that skipped building a hosted member's document (the member held no component of
    the name) must not keep skipping it once the member holds one: the deploy moves the name's
    generation, and the guard then rules the proxy out."""
    with running() as upstream:
        folder = "org/example/lib"
        upstream.put(
            f"{folder}/maven-metadata.xml",
            b"<metadata><groupId>org.example</groupId><artifactId>lib</artifactId><versioning>"
            b"<versions><version>1.0</version></versions></versioning></metadata>",
        )
        hosted = create(state, "maven", "hosted")
        proxy = create(state, "maven", "proxy", url=upstream.url)
        group = create(state, "maven", "group", members=[hosted, proxy])
        url = f"/repository/{group}/{folder}/maven-metadata.xml"

        async def scenario(counter: Counter) -> None:
            first = await counter.get(url)
            assert first.status_code == 200 and b"<version>1.0</version>" in first.content
            again = await counter.get(url)  # from this process's caches
            assert again.status_code == 200 and again.content == first.content
            pom = pom_xml("org.example", "lib", "2.0")
            deployed = await counter.client.put(
                f"/repository/{hosted}/{folder}/2.0/lib-2.0.pom", content=pom, auth=("admin", "x")
            )
            assert deployed.status_code == 201, deployed.text
            after = await counter.get(url)
            assert after.status_code == 200
            assert b"<version>2.0</version>" in after.content
            assert b"<version>1.0</version>" not in after.content  # the guard: the proxy's is left out

        measured(state, scenario)


def test_a_group_maven_metadata_request_walks_the_group_once(state, monkeypatch):
    """maven's route first asks which document the path names (the artifact's versions, else the
    groupId's plugins), then answers it: the request computes the group's model once, not twice."""
    from artifactory.repository.index import Index

    walks = []
    real = Index._group

    async def counted(self, repo, *args, **kwargs):
        walks.append(repo.name)
        return await real(self, repo, *args, **kwargs)

    monkeypatch.setattr(Index, "_group", counted)
    hosted = create(state, "maven", "hosted")
    group = create(state, "maven", "group", members=[hosted])
    folder = "org/example/lib"
    url = f"/repository/{group}/{folder}/maven-metadata.xml"

    async def scenario(counter: Counter) -> None:
        pom = pom_xml("org.example", "lib", "1.0")
        deployed = await counter.client.put(
            f"/repository/{hosted}/{folder}/1.0/lib-1.0.pom", content=pom, auth=("admin", "x")
        )
        assert deployed.status_code == 201, deployed.text
        for _ in range(2):  # cold, then from this process's caches (or its last walk: none)
            walks.clear()
            response = await counter.get(url)
            assert response.status_code == 200 and b"<version>1.0</version>" in response.content
            assert walks in ([group], [])

    measured(state, scenario)
