"""The engine's own merge of a group's documents applies the dependency-confusion guard: a name a
hosted member holds takes nothing from proxy members, on SQLite and PostgreSQL (that it holds whoever
asks is tested end to end in tests/artifactory/repository/test_group.py)."""

import asyncio
import os

from artifactory.formats import Coordinates, Format
from artifactory.repository.hosted import Upload
from artifactory.repository.model import Document
from tests.artifactory.engine.test_engine_api import ADMIN
from tests.artifactory.repository.upstream import running


class Indexed(Format):
    """`index/<name>` is a document every member's copy of which a group merges, line by line."""

    id = "indexed-test"

    def coordinates(self, path):
        parts = path.split("/")
        return Coordinates(name=parts[1]) if len(parts) >= 2 and parts[0] in ("index", "files") else None

    def is_mergeable(self, path):
        return path.startswith("index/")

    def merge_documents(self, path, documents):
        return b"".join(documents)


def repository(state, kind, **config):
    if "indexed-test" not in state.formats:
        state.formats.add(Indexed())
    name = f"{kind}{os.urandom(4).hex()}"
    state.engine.repos.create({"name": name, "format": "indexed-test", "type": kind, **config})
    return state.engine.repository(name)


def test_a_group_merge_takes_no_proxy_document_for_a_name_a_hosted_member_holds(state):
    with running() as upstream:
        upstream.put("index/internal", b"proxy: internal 99.0\n")
        upstream.put("index/public", b"proxy: public 1.0\n")
        proxy = repository(state, "proxy", url=upstream.url)
        hosted = repository(state, "hosted")
        group = repository(state, "group", members=[proxy.name, hosted.name])

        async def scenario():
            engine = state.engine
            try:
                release = Upload(path="files/internal/1.0", component=Coordinates("internal", "1.0"))
                await engine.put_bytes(hosted, b"hosted: internal 1.0\n", release, ADMIN)
                await engine.put_bytes(
                    hosted, b"hosted: internal 1.0\n", Upload(path="index/internal"), ADMIN
                )
                merged = await engine.get(engine.repository(group.name), "index/internal", ADMIN)
                assert isinstance(merged, Document) and merged.body == b"hosted: internal 1.0\n"
                public = await engine.get(engine.repository(group.name), "index/public", ADMIN)
                assert isinstance(public, Document) and public.body == b"proxy: public 1.0\n"
            finally:
                await engine.close()

        asyncio.run(scenario())
        assert upstream.count("index/internal") == 0
