"""A group's document is answered from its last walk only while nothing it read can have moved: a
version deployed into a member by another process of the node (one sharing its data directory) or
through this process is in the very next answer, on both databases (PostgreSQL: through the node's
count of commits, not waiting for the notification)."""

from __future__ import annotations

import asyncio

import httpx

from artifactory.app import Application
from artifactory.state import AppState
from tests.artifactory.engine.test_group_transactions import create, listening
from tests.formats.maven.support import pom_xml

FOLDER = "org/example/lib"


def client(state: AppState) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=Application(state))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", auth=("admin", "x"))


async def deploy(http: httpx.AsyncClient, repo: str, version: str) -> None:
    pom = pom_xml("org.example", "lib", version)
    response = await http.put(f"/repository/{repo}/{FOLDER}/{version}/lib-{version}.pom", content=pom)
    assert response.status_code == 201, response.text


def test_a_groups_last_walk_never_hides_a_version_deployed_here_or_by_another_process(state):
    other = AppState.build(state.settings)  # another process of the node: the same data directory
    a, b = create(state, "maven", "hosted"), create(state, "maven", "hosted")
    group = create(state, "maven", "group", members=[a, b])
    url = f"/repository/{group}/{FOLDER}/maven-metadata.xml"
    listening(state)

    async def scenario() -> None:
        here, there = client(state), client(other)
        try:
            await deploy(here, a, "1.0")
            for _ in range(2):  # the second answer is the first's walk
                response = await here.get(url)
                assert response.status_code == 200 and b"<version>1.0</version>" in response.content
            await deploy(there, b, "2.0")
            assert b"<version>2.0</version>" in (await here.get(url)).content
            await deploy(here, a, "3.0")
            assert b"<version>3.0</version>" in (await here.get(url)).content
        finally:
            await here.aclose()
            await there.aclose()
            await state.engine.close()
            await other.engine.close()

    try:
        asyncio.run(scenario())
    finally:
        state.engine.repos.close()
        other.db.dispose()
