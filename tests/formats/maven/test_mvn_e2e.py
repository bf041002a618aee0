"""The real mvn against a real server: deploy a release and a SNAPSHOT (twice), then resolve both from a
clean local repository through a group; every plugin the builds need comes through a proxy whose
upstream is the machine's ~/.m2 served over loopback. Nothing reaches the internet."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from lxml import etree

from artifactory.testing.server import LiveServer
from tests.formats.maven.support import (
    StaticServer,
    jar_bytes,
    pom_xml,
    project_pom,
    run_mvn,
    settings_xml,
    write_project,
)

GROUP_ID = "com.example.e2e"

GREETING_V1 = """package com.example.e2e;
public class Greeting { public static String hello() { return "hello 1"; } }
"""
GREETING_V2 = """package com.example.e2e;
public class Greeting {
    public static String hello() { return "hello 2"; }
    public static String onlyInBuildTwo() { return "two"; }
}
"""
TOOLS = """package com.example.e2e;
public class Tools { public static int answer() { return 42; } }
"""
APP = """package com.example.app;
import com.example.e2e.Greeting;
import com.example.e2e.Tools;
public class App {
    public static String run() { return Greeting.onlyInBuildTwo() + Tools.answer(); }
}
"""


@pytest.fixture(scope="module")
def repos(server: LiveServer, m2_upstream: StaticServer) -> dict[str, str]:
    releases = server.create_repo("maven", name="mvn-releases")
    snapshots = server.create_repo("maven", name="mvn-snapshots", version_policy="snapshot")
    plugins = server.create_repo("maven", "proxy", name="mvn-plugins", url=m2_upstream.url)
    group = server.create_repo("maven", "group", name="mvn-public", members=[releases, snapshots, plugins])
    return {"releases": releases, "snapshots": snapshots, "plugins": plugins, "group": group}


def test_mvn_deploys_release_and_snapshots_then_resolves_them_through_the_group(
    server: LiveServer, repos: dict[str, str], tmp_path: Path
) -> None:
    settings = tmp_path / "settings.xml"
    settings.write_text(settings_xml(server.repo_url(repos["group"]), ("releases", "snapshots")))
    deploy_repo = tmp_path / "m2-deploy"
    releases_url, snapshots_url = server.repo_url(repos["releases"]), server.repo_url(repos["snapshots"])

    tools = write_project(
        tmp_path / "tools",
        project_pom(GROUP_ID, "tools", "1.0", releases_url=releases_url, snapshots_url=snapshots_url),
        {"com/example/e2e/Tools.java": TOOLS},
    )
    result = run_mvn(tools, settings, deploy_repo, "deploy")
    assert result.returncode == 0, result.stdout + result.stderr

    greeting_pom = project_pom(
        GROUP_ID, "greeting", "1.0-SNAPSHOT", releases_url=releases_url, snapshots_url=snapshots_url
    )
    for source in (GREETING_V1, GREETING_V2):
        project = write_project(
            tmp_path / "greeting", greeting_pom, {"com/example/e2e/Greeting.java": source}
        )
        result = run_mvn(project, settings, deploy_repo, "deploy")
        assert result.returncode == 0, result.stdout + result.stderr

    with server.client() as client:
        snapshot_meta = client.get(
            f"/repository/{repos['group']}/com/example/e2e/greeting/1.0-SNAPSHOT/maven-metadata.xml"
        )
        assert snapshot_meta.status_code == 200
        doc = etree.fromstring(snapshot_meta.content)
        assert doc.findtext("versioning/snapshot/buildNumber") == "2"
        artifact_meta = etree.fromstring(
            client.get(f"/repository/{repos['releases']}/com/example/e2e/tools/maven-metadata.xml").content
        )
        assert artifact_meta.findtext("versioning/release") == "1.0"
        # A release redeploy is refused (allow_once is the default of a release repository).
        again = run_mvn(tools, settings, deploy_repo, "deploy")
        assert again.returncode != 0
        listing = client.get(f"/repository/{repos['snapshots']}/com/example/e2e/greeting/1.0-SNAPSHOT/")
        assert listing.text.count(".jar<") == 2, listing.text

    app_pom = project_pom(
        "com.example.app",
        "app",
        "1.0",
        dependencies=((GROUP_ID, "greeting", "1.0-SNAPSHOT"), (GROUP_ID, "tools", "1.0")),
    )
    app = write_project(tmp_path / "app", app_pom, {"com/example/app/App.java": APP})
    clean_repo = tmp_path / "m2-clean"
    result = run_mvn(app, settings, clean_repo, "package")
    assert result.returncode == 0, result.stdout + result.stderr

    resolved = clean_repo / "com" / "example" / "e2e" / "greeting" / "1.0-SNAPSHOT"
    jars = sorted(p.name for p in resolved.glob("greeting-1.0-*.jar"))
    assert jars and all("-2" in name or name.endswith("SNAPSHOT.jar") for name in jars), jars
    with zipfile.ZipFile(resolved / "greeting-1.0-SNAPSHOT.jar") as archive:
        assert "com/example/e2e/Greeting.class" in archive.namelist()
    assert (clean_repo / "com" / "example" / "e2e" / "tools" / "1.0" / "tools-1.0.jar").is_file()
    # The plugins came through the proxy: it now holds them.
    with server.client() as client:
        cached = client.get(
            f"/repository/{repos['plugins']}/org/apache/maven/plugins/maven-compiler-plugin/3.13.0/"
            "maven-compiler-plugin-3.13.0.pom"
        )
        assert cached.status_code == 200


def test_mvn_resolves_a_version_range_to_the_internal_artifact_not_a_public_lookalike(
    server: LiveServer, repos: dict[str, str], tmp_path: Path
) -> None:
    """An internal org.example.internal:lib 1.0 and a public upstream offering 99.0 of the same name:
    through the group, [1.0,) must resolve to 1.0 (the lookalike's versions are not even listed)."""
    public = tmp_path / "public"
    folder = public / "org/example/internal/lib"
    (folder / "99.0").mkdir(parents=True)
    (folder / "maven-metadata.xml").write_bytes(
        b"<metadata><groupId>org.example.internal</groupId><artifactId>lib</artifactId><versioning>"
        b"<latest>99.0</latest><release>99.0</release><versions><version>99.0</version></versions>"
        b"<lastUpdated>20990101000000</lastUpdated></versioning></metadata>"
    )
    (folder / "99.0/lib-99.0.jar").write_bytes(jar_bytes({"evil.txt": b"1"}))
    (folder / "99.0/lib-99.0.pom").write_bytes(pom_xml("org.example.internal", "lib", "99.0"))
    with StaticServer(public) as lookalike, server.client() as admin:
        internal = server.create_repo("maven", name="mvn-internal")
        remote = server.create_repo("maven", "proxy", name="mvn-lookalike", url=lookalike.url)
        group = server.create_repo(
            "maven", "group", name="mvn-guarded", members=[remote, internal, repos["plugins"]]
        )
        base = "org/example/internal/lib/1.0/lib-1.0"
        for path, data in ((f"{base}.jar", jar_bytes({"internal.txt": b"1"})), (f"{base}.pom", b"")):
            data = data or pom_xml("org.example.internal", "lib", "1.0")
            assert admin.put(f"/repository/{internal}/{path}", content=data).status_code == 201
        settings = tmp_path / "settings.xml"
        settings.write_text(settings_xml(server.repo_url(group)))
        app_pom = project_pom(
            "com.example.app", "ranged", "1.0", dependencies=(("org.example.internal", "lib", "[1.0,)"),)
        )
        source = "package com.example.app;\npublic class Ranged {}\n"
        app = write_project(tmp_path / "ranged", app_pom, {"com/example/app/Ranged.java": source})
        local = tmp_path / "m2-ranged"
        result = run_mvn(app, settings, local, "compile")
    assert result.returncode == 0, result.stdout + result.stderr
    resolved = local / "org/example/internal/lib"
    assert (resolved / "1.0/lib-1.0.jar").is_file()
    assert not (resolved / "99.0").exists()
