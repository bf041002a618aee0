"""Set me up: client settings for one repository, filled in with this server's URL and its name.

Builders are keyed by format id. A format may supply its own through a `setup_snippets(context)`
method on its Format class (returning a list of Snippet), which takes precedence: a format added
later brings its snippets with it. Plain text only: the templates escape every character.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from artifactory.formats import Format

TOKEN = "${ARTIFACTORY_TOKEN}"  # noqa: S105 - a placeholder the user fills in


@dataclass(frozen=True)
class SetupContext:
    base: str  # the server's external URL, no trailing slash
    repository: str
    repo_type: str  # hosted, proxy or group
    writable: bool  # uploads are accepted (hosted, or a group with a write member)
    username: str = "USERNAME"
    package: str = ""  # on a version page: what to install
    version: str = ""
    namespace: str = ""

    @property
    def url(self) -> str:
        return f"{self.base}/repository/{self.repository}/"

    @property
    def scheme(self) -> str:
        return urlsplit(self.base).scheme

    @property
    def host(self) -> str:
        """host[:port] as clients write it in registry names."""
        return urlsplit(self.base).netloc

    @property
    def hostname(self) -> str:
        return urlsplit(self.base).hostname or ""

    @property
    def insecure(self) -> bool:
        return self.scheme == "http"

    @property
    def ident(self) -> str:
        """The repository name as an identifier (Cargo registry names, Gradle repository names)."""
        cleaned = re.sub(r"[^A-Za-z0-9_-]", "-", self.repository)
        return cleaned if cleaned[:1].isalpha() else f"r-{cleaned}"


@dataclass(frozen=True)
class Snippet:
    id: str  # unique on the page: element ids, copy buttons
    title: str
    text: str
    file: str = ""  # where it goes (a file name), or "" for a command
    note: str = ""


def snippets(fmt: Format | None, format_id: str, context: SetupContext) -> list[Snippet]:
    own = getattr(fmt, "setup_snippets", None)
    if callable(own):
        supplied = own(context)
        if supplied:
            return [s for s in supplied if isinstance(s, Snippet)]
    builder = BUILDERS.get(format_id)
    return builder(context) if builder is not None else []


# -- PyPI ---------------------------------------------------------------------------------------
def _pypi(c: SetupContext) -> list[Snippet]:
    index = f"{c.url}simple/"
    trusted = f"trusted-host = {c.hostname}\n" if c.insecure and not _loopback(c.hostname) else ""
    what = _pypi_requirement(c)
    found = [
        Snippet(
            "pip-conf",
            "pip",
            f"[global]\nindex-url = {index}\n{trusted}",
            file="pip.conf (~/.config/pip/pip.conf, or %APPDATA%\\pip\\pip.ini)",
        ),
        Snippet(
            "pip-install",
            "pip install",
            f"pip install --index-url {index}"
            + (f" --trusted-host {c.hostname}" if trusted else "")
            + f" {what}",
        ),
        Snippet(
            "uv",
            "uv",
            f'[[tool.uv.index]]\nname = "{c.ident}"\nurl = "{index}"\ndefault = true\n'
            + (f'publish-url = "{c.url}"\n' if c.writable else ""),
            file="pyproject.toml",
            note=f"or: uv pip install --index-url {index} {what}",
        ),
        Snippet(
            "poetry",
            "Poetry",
            f"poetry source add --priority=primary {c.ident} {index}\n"
            + (
                f"poetry config repositories.{c.ident} {c.url}\n"
                f"poetry config http-basic.{c.ident} {c.username} {TOKEN}\n"
                f"poetry publish --repository {c.ident}\n"
                if c.writable
                else ""
            ),
        ),
        Snippet(
            "pdm",
            "PDM",
            f'[[tool.pdm.source]]\nname = "{c.ident}"\nurl = "{index}"\nverify_ssl = true\n',
            file="pyproject.toml",
            note=f"publish: pdm publish --repository {c.url} --username {c.username} --password {TOKEN}"
            if c.writable
            else "",
        ),
    ]
    if c.writable:
        found.append(
            Snippet(
                "pypirc",
                "twine",
                f"[distutils]\nindex-servers =\n    {c.ident}\n\n[{c.ident}]\nrepository = {c.url}\n"
                f"username = {c.username}\npassword = {TOKEN}\n",
                file="~/.pypirc",
                note=f"then: twine upload --repository {c.ident} dist/*",
            )
        )
    return found


def _pypi_requirement(c: SetupContext) -> str:
    if not c.package:
        return "PACKAGE"
    return f"{c.package}=={c.version}" if c.version else c.package


def _loopback(hostname: str) -> bool:
    return hostname in ("localhost", "::1") or hostname.startswith("127.")


# -- npm ----------------------------------------------------------------------------------------
def _npm(c: SetupContext) -> list[Snippet]:
    auth_key = "//" + c.url.split("://", 1)[1]
    package = c.package if not c.namespace else f"{c.namespace}/{c.package}"
    what = (f"{package}@{c.version}" if c.version else package) if c.package else "PACKAGE"
    berry = f'npmRegistryServer: "{c.url}"\n'
    if c.insecure:
        berry += f'unsafeHttpWhitelist:\n  - "{c.hostname}"\n'
    berry += 'npmAuthToken: "${NPM_TOKEN:-}"\n'
    return [
        Snippet(
            "npmrc",
            "npm and pnpm",
            f"registry={c.url}\n{auth_key}:_authToken=${{NPM_TOKEN}}\n",
            file=".npmrc (in the project, or ~/.npmrc)",
            note="for one scope only: @myscope:registry=" + c.url,
        ),
        Snippet("npm-install", "npm install", f"npm install --registry {c.url} {what}"),
        Snippet("yarn-classic", "Yarn classic (1.x)", f'registry "{c.url}"\n', file=".yarnrc"),
        Snippet("yarn-berry", "Yarn berry (2+)", berry, file=".yarnrc.yml"),
    ] + (
        [
            Snippet(
                "npm-publish", "npm publish", f"npm login --registry {c.url}\nnpm publish --registry {c.url}"
            )
        ]
        if c.writable
        else []
    )


# -- Maven and Gradle -----------------------------------------------------------------------------
def _maven(c: SetupContext) -> list[Snippet]:
    settings = (
        "<settings>\n"
        "  <servers>\n"
        "    <server>\n"
        f"      <id>{c.ident}</id>\n"
        f"      <username>{c.username}</username>\n"
        "      <password>${env.ARTIFACTORY_TOKEN}</password>\n"
        "    </server>\n"
        "  </servers>\n"
        "  <mirrors>\n"
        "    <mirror>\n"
        f"      <id>{c.ident}</id>\n"
        "      <mirrorOf>*</mirrorOf>\n"
        f"      <url>{c.url}</url>\n"
        "    </mirror>\n"
        "  </mirrors>\n"
        "</settings>\n"
    )
    found = [Snippet("maven-settings", "Maven mirror", settings, file="~/.m2/settings.xml")]
    if c.writable:
        found.append(
            Snippet(
                "maven-deploy",
                "Maven deploy",
                "<distributionManagement>\n"
                "  <repository>\n"
                f"    <id>{c.ident}</id>\n"
                f"    <url>{c.url}</url>\n"
                "  </repository>\n"
                "  <snapshotRepository>\n"
                f"    <id>{c.ident}</id>\n"
                f"    <url>{c.url}</url>\n"
                "  </snapshotRepository>\n"
                "</distributionManagement>\n",
                file="pom.xml",
                note="then: mvn deploy (credentials from the <server> of the same id in settings.xml)",
            )
        )
    insecure_kts = "        isAllowInsecureProtocol = true\n" if c.insecure else ""
    insecure_groovy = "        allowInsecureProtocol = true\n" if c.insecure else ""
    kotlin = f'repositories {{\n    maven {{\n        url = uri("{c.url}")\n{insecure_kts}    }}\n}}\n'
    groovy = f"repositories {{\n    maven {{\n        url '{c.url}'\n{insecure_groovy}    }}\n}}\n"
    if c.writable:
        kotlin += (
            "publishing {\n    repositories {\n        maven {\n"
            f'            name = "{_gradle_name(c)}"\n            url = uri("{c.url}")\n'
            + ("            isAllowInsecureProtocol = true\n" if c.insecure else "")
            + "            credentials(PasswordCredentials::class)\n        }\n    }\n}\n"
        )
        groovy += (
            "publishing {\n    repositories {\n        maven {\n"
            f"            name = '{_gradle_name(c)}'\n            url = '{c.url}'\n"
            + ("            allowInsecureProtocol = true\n" if c.insecure else "")
            + "            credentials(PasswordCredentials)\n        }\n    }\n}\n"
        )
    note = (
        f"credentials: {_gradle_name(c)}Username and {_gradle_name(c)}Password in ~/.gradle/gradle.properties"
        if c.writable
        else ""
    )
    found.append(Snippet("gradle-kotlin", "Gradle (Kotlin DSL)", kotlin, file="build.gradle.kts", note=note))
    found.append(Snippet("gradle-groovy", "Gradle (Groovy DSL)", groovy, file="build.gradle", note=note))
    return found


def _gradle_name(c: SetupContext) -> str:
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", c.repository) if p]
    name = "".join(p[:1].upper() + p[1:] for p in parts) or "Artifactory"
    return name[:1].lower() + name[1:] if name[:1].isalpha() else f"repo{name}"


# -- OCI (docker, podman, skopeo) -----------------------------------------------------------------
def _oci(c: SetupContext) -> list[Snippet]:
    image = f"{c.host}/{c.repository}/{c.package or 'IMAGE'}:{c.version or 'TAG'}"
    tls = " --tls-verify=false" if c.insecure else ""
    found = [
        Snippet(
            "docker",
            "docker",
            f"docker login {c.host}\ndocker pull {image}\n"
            + (f"docker tag IMAGE:TAG {image}\ndocker push {image}\n" if c.writable else ""),
            note=(
                f'plain HTTP: add "{c.host}" to "insecure-registries" in /etc/docker/daemon.json'
                if c.insecure
                else ""
            ),
        ),
        Snippet(
            "podman",
            "podman",
            f"podman login{tls} {c.host}\npodman pull{tls} {image}\n"
            + (f"podman push{tls} IMAGE:TAG {image}\n" if c.writable else ""),
        ),
        Snippet(
            "skopeo",
            "skopeo",
            f"skopeo inspect{tls} docker://{image}\n"
            + (
                f"skopeo copy{' --dest-tls-verify=false' if c.insecure else ''} "
                f"docker-archive:image.tar docker://{image}\n"
                if c.writable
                else ""
            ),
        ),
    ]
    if urlsplit(c.base).path.strip("/"):
        found.append(
            Snippet(
                "oci-note",
                "Note",
                "OCI clients talk to /v2/ at the root of the host: serve this server at the root of a "
                "host name for docker and podman.",
            )
        )
    return found


# -- Go, Cargo, raw ------------------------------------------------------------------------------
def _go(c: SetupContext) -> list[Snippet]:
    found = [
        Snippet(
            "go-env",
            "go",
            f"go env -w GOPROXY={c.url}\ngo env -w GONOSUMDB=example.com/private/*\n"
            + (f"go env -w GOINSECURE={c.host}\n" if c.insecure else ""),
            note="private modules are not in the public checksum database: list their paths in GONOSUMDB "
            "(or set GOSUMDB=off)",
        )
    ]
    if c.writable:
        found.append(
            Snippet(
                "go-publish",
                "Upload a module version",
                f"curl -u {c.username}:{TOKEN} -T v1.0.0.zip {c.url}MODULE/@v/v1.0.0.zip\n",
                note="the zip as `go mod download` makes it; .mod and .info are derived from it",
            )
        )
    return found


def _cargo(c: SetupContext) -> list[Snippet]:
    config = f'[registries.{c.ident}]\nindex = "sparse+{c.url}"\n'
    if c.repo_type != "hosted":
        config += f'\n[source.crates-io]\nreplace-with = "{c.ident}"\n\n[source.{c.ident}]\n'
        config += f'registry = "sparse+{c.url}"\n'
    found = [
        Snippet(
            "cargo-config",
            "Cargo",
            config,
            file=".cargo/config.toml",
            note=f"token: CARGO_REGISTRIES_{c.ident.upper().replace('-', '_')}_TOKEN",
        )
    ]
    if c.writable:
        found.append(Snippet("cargo-publish", "cargo publish", f"cargo publish --registry {c.ident}\n"))
    return found


def _raw(c: SetupContext) -> list[Snippet]:
    found = [Snippet("raw-get", "Download", f"curl -fO {c.url}PATH/TO/FILE\n")]
    if c.writable:
        found.append(
            Snippet(
                "raw-put",
                "Upload",
                f"curl -fu {c.username}:{TOKEN} -T FILE {c.url}PATH/TO/FILE\n",
                note="optional: -H 'X-Checksum-Sha256: <hex>' is verified before anything is stored",
            )
        )
    return found


BUILDERS: dict[str, Callable[[SetupContext], list[Snippet]]] = {
    "pypi": _pypi,
    "npm": _npm,
    "maven": _maven,
    "oci": _oci,
    "go": _go,
    "cargo": _cargo,
    "raw": _raw,
}
