"""Helpers for the maven tests: a static file server on loopback, POMs, jars, settings.xml, running mvn."""

from __future__ import annotations

import functools
import io
import os
import shutil
import subprocess
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from artifactory.testing.server import ADMIN_PASSWORD

M2 = Path.home() / ".m2" / "repository"
# Plugin versions present in the machine's ~/.m2, pinned so that no build needs plugin metadata.
PLUGINS = {
    "maven-clean-plugin": "3.3.2",
    "maven-resources-plugin": "3.3.1",
    "maven-compiler-plugin": "3.13.0",
    "maven-surefire-plugin": "3.2.5",
    "maven-jar-plugin": "3.4.1",
    "maven-install-plugin": "3.1.1",
    "maven-deploy-plugin": "3.1.1",
}


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        pass


class _AnyPath(BaseHTTPRequestHandler):
    """Answers 200 for any path, as a careless or hostile upstream would."""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        body = f"upstream copy of {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        pass


class StaticServer:
    """Serves a folder read-only over HTTP on 127.0.0.1 (an upstream Maven repository)."""

    def __init__(self, root: Path | None) -> None:
        """`root` None: answer 200 for every path instead of serving a folder."""
        handler = _AnyPath if root is None else functools.partial(_Quiet, directory=str(root))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def __enter__(self) -> StaticServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def settings_xml(mirror_url: str, server_ids: tuple[str, ...] = (), password: str = ADMIN_PASSWORD) -> str:
    servers = "".join(
        f"<server><id>{sid}</id><username>admin</username><password>{password}</password></server>"
        for sid in server_ids
    )
    return f"""<settings xmlns="http://maven.apache.org/SETTINGS/1.0.0">
  <mirrors><mirror><id>artifactory</id><mirrorOf>*</mirrorOf><url>{mirror_url}</url></mirror></mirrors>
  <servers>{servers}</servers>
  <profiles><profile><id>no-central</id><repositories><repository><id>central</id>
    <url>{mirror_url}</url><snapshots><enabled>true</enabled></snapshots></repository></repositories>
    <pluginRepositories><pluginRepository><id>central</id><url>{mirror_url}</url>
    <snapshots><enabled>true</enabled></snapshots></pluginRepository></pluginRepositories>
  </profile></profiles>
  <activeProfiles><activeProfile>no-central</activeProfile></activeProfiles>
</settings>
"""


def plugin_management() -> str:
    plugins = "".join(
        f"<plugin><groupId>org.apache.maven.plugins</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></plugin>"
        for a, v in PLUGINS.items()
    )
    return f"<pluginManagement><plugins>{plugins}</plugins></pluginManagement>"


def project_pom(
    group_id: str,
    artifact_id: str,
    version: str,
    *,
    dependencies: tuple[tuple[str, str, str], ...] = (),
    releases_url: str = "",
    snapshots_url: str = "",
) -> str:
    deps = "".join(
        f"<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>"
        for g, a, v in dependencies
    )
    distribution = ""
    if releases_url or snapshots_url:
        distribution = (
            "<distributionManagement>"
            f"<repository><id>releases</id><url>{releases_url}</url></repository>"
            f"<snapshotRepository><id>snapshots</id><url>{snapshots_url}</url></snapshotRepository>"
            "</distributionManagement>"
        )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>{group_id}</groupId>
  <artifactId>{artifact_id}</artifactId>
  <version>{version}</version>
  <packaging>jar</packaging>
  <properties>
    <maven.compiler.release>17</maven.compiler.release>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
  </properties>
  <dependencies>{deps}</dependencies>
  <build>{plugin_management()}</build>
  {distribution}
</project>
"""


def write_project(folder: Path, pom: str, sources: dict[str, str]) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    for name, text in sources.items():
        target = folder / "src" / "main" / "java" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    (folder / "pom.xml").write_text(pom)
    return folder


def run_mvn(project: Path, settings: Path, local_repo: Path, *goals: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("mvn") is None:
        pytest.skip("mvn is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAVEN_")}
    env["MAVEN_OPTS"] = "-Xshare:auto -XX:TieredStopAtLevel=1"
    command = [
        "mvn",
        "-B",
        "-q",
        "-s",
        str(settings),
        f"-Dmaven.repo.local={local_repo}",
        "-Dmaven.test.skip=true",
        *goals,
    ]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=300)


def pom_xml(group_id: str, artifact_id: str, version: str, extra: str = "", packaging: str = "jar") -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        f"<groupId>{group_id}</groupId><artifactId>{artifact_id}</artifactId><version>{version}</version>"
        f"<packaging>{packaging}</packaging>{extra}</project>"
    ).encode()


def jar_bytes(files: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
        for name, data in (files or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def plugin_jar(prefix: str, name: str = "Example Plugin") -> bytes:
    descriptor = (
        f"<plugin><name>{name}</name><goalPrefix>{prefix}</goalPrefix><mojos></mojos></plugin>"
    ).encode()
    return jar_bytes({"META-INF/maven/plugin.xml": descriptor})
