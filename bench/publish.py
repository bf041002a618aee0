"""Publish rates: twine, npm publish and an OCI push, each from many concurrent clients, beside the
raw PUT of writes.py.

    python bench/publish.py [--clients 8] [--count 1200] [--databases sqlite,postgresql] [--workers 2]

For each database (SQLite in a fresh data dir; PostgreSQL in a schema of its own on
ARTIFACTORY_TEST_DATABASE_URL or the local server's database `test`, dropped at the end) one server
(`python -m artifactory serve --workers 2`, uvicorn) gets hosted repositories for pypi, npm and oci,
and `--clients` concurrent clients publish `--count` distinct packages per protocol, sending what the
real clients send:
  - twine: the legacy upload API, one multipart POST per wheel (`:action=file_upload`, name, version,
    filetype, pyversion, metadata_version, md5/sha256/blake2_256 digests, `content`), Basic
    `__token__` and an API token;
  - npm publish: one JSON PUT per version (the manifest with `dist.shasum` and `dist.integrity`,
    dist-tags, and the tarball base64-encoded under `_attachments`), Bearer token;
  - an OCI push (as skopeo and docker do it): a registry token from /v2/token once per client, then
    per image for each blob (a 1 KB layer and the config) a HEAD that misses, a POST that opens an
    upload session and the PUT of its bytes with their digest, then the PUT of the manifest under a tag.
Each package is new (unique name or tag and unique bytes), about 1 KB of content. The payloads are
built before the clock starts; the clients are a small keep-alive HTTP/1.1 client on asyncio, so
the client side costs little next to the server. Rates are publishes (whole packages or images)
per second of wall time; the server's CPU per publish is reported too. Every answer must be the
success the real client expects, and a sample of each is read back afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from artifactory.testing.fixtures import drop_schema, new_schema, test_database_url  # noqa: E402
from artifactory.testing.server import ADMIN_PASSWORD, LiveServer  # noqa: E402
from bench.run import _tree_cpu  # noqa: E402

PROTOCOLS = ("twine", "npm", "oci")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


# -- a minimal keep-alive HTTP/1.1 client --------------------------------------------------------
class Connection:
    """One keep-alive connection; requests are sent one after the other (as one client would)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, target: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        answer: dict[str, str] = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                answer[name.strip().lower()] = value.strip()
        if method == "HEAD" or status in (204, 304):
            data = b""
        elif "content-length" in answer:
            data = await self.reader.readexactly(int(answer["content-length"]))
        elif answer.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                parts.append(await self.reader.readexactly(size + 2))
                if size == 0:
                    break
            data = b"".join(p[:-2] for p in parts)
        else:
            data = await self.reader.read()
            self.close()
        return status, answer, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Refused(Exception):
    pass


def expect(status: int, wanted: int, what: str, body: bytes) -> None:
    if status != wanted:
        raise Refused(f"{what}: HTTP {status} (expected {wanted}): {body[:200]!r}")


# -- payloads ------------------------------------------------------------------------------------
def filler(label: str, size: int = 1024) -> bytes:
    """`size` bytes that differ for every label and do not compress away."""
    seed = hashlib.sha256(label.encode()).digest()
    out = bytearray()
    while len(out) < size:
        seed = hashlib.sha256(seed).digest()
        out += seed
    return bytes(out[:size])


def wheel(name: str, version: str) -> bytes:
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": b"DATA = " + repr(filler(name)).encode() + b"\n",
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: bench\n\n"
        ).encode(),
        f"{dist_info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return buffer.getvalue()


def twine_request(prefix: str, n: int, auth: str) -> tuple[str, dict[str, str], bytes]:
    name, version = f"{prefix}-pkg-{n}", "1.0.0"
    data = wheel(name, version)
    filename = f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": name,
        "version": version,
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "summary": "bench",
        "md5_digest": hashlib.md5(data).hexdigest(),
        "sha256_digest": hashlib.sha256(data).hexdigest(),
        "blake2_256_digest": hashlib.blake2b(data, digest_size=32).hexdigest(),
    }
    boundary = hashlib.md5(data).hexdigest()
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"Authorization": auth, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    return filename, headers, b"".join(parts)


def npm_tarball(name: str, version: str) -> bytes:
    manifest = json.dumps({"name": name, "version": version, "main": "index.js"}).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, data in (("package/package.json", manifest), ("package/index.js", filler(name))):
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), 499162500, 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def npm_request(prefix: str, n: int, repo_url: str, auth: str) -> tuple[str, dict[str, str], bytes]:
    name, version = f"{prefix}-pkg-{n}", "1.0.0"
    tgz = npm_tarball(name, version)
    sri = "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()
    manifest = {
        "name": name,
        "version": version,
        "main": "index.js",
        "_id": f"{name}@{version}",
        "_nodeVersion": "18.19.0",
        "_npmVersion": "9.2.0",
        "dist": {
            "integrity": sri,
            "shasum": hashlib.sha1(tgz).hexdigest(),
            "tarball": f"{repo_url}{name}/-/{name}-{version}.tgz",
        },
    }
    document = {
        "_id": name,
        "name": name,
        "description": "bench",
        "dist-tags": {"latest": version},
        "versions": {version: manifest},
        "access": None,
        "_attachments": {
            f"{name}-{version}.tgz": {
                "content_type": "application/octet-stream",
                "data": base64.b64encode(tgz).decode(),
                "length": len(tgz),
            }
        },
    }
    headers = {
        "Authorization": auth,
        "Content-Type": "application/json",
        "npm-command": "publish",
        "Accept": "*/*",
    }
    return name, headers, json.dumps(document).encode()


@dataclass
class Image:
    tag: str
    blobs: list[bytes]
    manifest: bytes


def oci_image(prefix: str, n: int) -> Image:
    layer = filler(f"{prefix}-layer-{n}")
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [f"{prefix}-{n}"]}}
    ).encode()

    def descriptor(media_type: str, data: bytes) -> dict[str, object]:
        return {
            "mediaType": media_type,
            "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
            "size": len(data),
        }

    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor(OCI_LAYER, layer)],
    }
    return Image(f"v{n}", [layer, config], json.dumps(manifest).encode())


# -- the clients ---------------------------------------------------------------------------------
@dataclass
class Run:
    done: int = 0
    requests: int = 0
    errors: list[str] = field(default_factory=list)


async def drive(
    clients: int, jobs: list[object], one: Callable[[Connection, object, Run], Awaitable[None]], port: int
) -> tuple[Run, float]:
    run = Run()
    queue = iter(jobs)

    async def client() -> None:
        connection = Connection("127.0.0.1", port)
        try:
            for job in queue:
                try:
                    await one(connection, job, run)
                    run.done += 1
                except (Refused, OSError, asyncio.IncompleteReadError) as exc:
                    run.errors.append(str(exc))
                    connection.close()
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return run, time.perf_counter() - started


async def twine_one(connection: Connection, job: object, run: Run) -> None:
    _filename, headers, body = job  # type: ignore[misc]
    status, _h, data = await connection.request("POST", "/repository/bench-pypi/", headers, body)
    run.requests += 1
    expect(status, 200, "twine upload", data)


async def npm_one(connection: Connection, job: object, run: Run) -> None:
    name, headers, body = job  # type: ignore[misc]
    status, _h, data = await connection.request("PUT", f"/repository/bench-npm/{name}", headers, body)
    run.requests += 1
    expect(status, 201, "npm publish", data)


def oci_pusher(
    token: Callable[[Connection], Awaitable[str]],
) -> Callable[[Connection, object, Run], Awaitable[None]]:
    tokens: dict[int, str] = {}

    async def one(connection: Connection, job: object, run: Run) -> None:
        image: Image = job  # type: ignore[assignment]
        if id(connection) not in tokens:  # a client asks for its registry token once
            tokens[id(connection)] = await token(connection)
            run.requests += 2
        auth = {"Authorization": "Bearer " + tokens[id(connection)]}
        base = "/v2/bench-oci/app"
        for blob in image.blobs:
            digest = "sha256:" + hashlib.sha256(blob).hexdigest()
            status, _h, data = await connection.request("HEAD", f"{base}/blobs/{digest}", auth)
            run.requests += 1
            if status == 200:  # stored already: a client skips the upload
                continue
            expect(status, 404, "blob HEAD", data)
            status, answer, data = await connection.request("POST", f"{base}/blobs/uploads/", auth)
            expect(status, 202, "blob upload start", data)
            location = answer["location"]
            target = location.split("://", 1)[-1].partition("/")[2] if "://" in location else location
            target = "/" + target.lstrip("/")
            joiner = "&" if "?" in target else "?"
            headers = {**auth, "Content-Type": "application/octet-stream"}
            status, _h, data = await connection.request(
                "PUT", f"{target}{joiner}digest={digest}", headers, blob
            )
            expect(status, 201, "blob upload", data)
            run.requests += 2
        headers = {**auth, "Content-Type": OCI_MANIFEST}
        status, _h, data = await connection.request(
            "PUT", f"{base}/manifests/{image.tag}", headers, image.manifest
        )
        run.requests += 1
        expect(status, 201, "manifest PUT", data)

    return one


async def registry_token(connection: Connection, basic: str) -> str:
    status, _h, _d = await connection.request("GET", "/v2/", {})
    expect(status, 401, "GET /v2/ without credentials", _d)
    scope = "repository:bench-oci/app:pull,push"
    status, _h, data = await connection.request(
        "GET", f"/v2/token?service=bench&scope={scope}", {"Authorization": basic}
    )
    expect(status, 200, "registry token", data)
    answer = json.loads(data)
    return str(answer.get("token") or answer["access_token"])


# -- one server ----------------------------------------------------------------------------------
@contextmanager
def server(workdir: Path, database: str, workers: int) -> Iterator[tuple[LiveServer, str]]:
    schema, url = "", ""
    base = test_database_url()
    if database == "postgresql":
        schema, url = new_schema(base)
    live = LiveServer(
        workdir / database, database_url=url, workers=workers, env={"ARTIFACTORY_CONFIG_CACHE_SECONDS": "1.0"}
    )
    try:
        live.start(timeout=60.0)
        with live.client() as admin:
            for fmt in ("pypi", "npm", "oci"):
                created = admin.post(
                    "/api/v1/repositories", json={"name": f"bench-{fmt}", "format": fmt, "type": "hosted"}
                )
                if created.status_code != 201:
                    raise RuntimeError(f"creating bench-{fmt}: {created.status_code} {created.text}")
            token = admin.post("/api/v1/tokens", json={"name": "bench"})
            if token.status_code != 201:
                raise RuntimeError(f"creating a token: {token.status_code} {token.text}")
        yield live, token.json()["token"]
    finally:
        live.stop()
        if schema:
            drop_schema(base, schema)


def read_back(live: LiveServer, prefix: str, count: int) -> list[str]:
    """The first and the last package of each protocol, as a client would fetch them."""
    problems = []
    with httpx.Client(base_url=live.url, auth=("admin", ADMIN_PASSWORD), timeout=30) as client:
        for n in (0, count - 1):
            name = f"{prefix}-pkg-{n}"
            page = client.get(f"/repository/bench-pypi/simple/{name}/")
            if page.status_code != 200 or f"{name.replace('-', '_')}-1.0.0" not in page.text:
                problems.append(f"pypi {name}: simple page HTTP {page.status_code}")
            doc = client.get(f"/repository/bench-npm/{name}")
            if doc.status_code != 200 or "1.0.0" not in doc.json().get("versions", {}):
                problems.append(f"npm {name}: packument HTTP {doc.status_code}")
            manifest = client.get(f"/v2/bench-oci/app/manifests/v{n}", headers={"Accept": OCI_MANIFEST})
            if manifest.status_code != 200:
                problems.append(f"oci v{n}: manifest HTTP {manifest.status_code}")
    return problems


def measure(
    live: LiveServer, token: str, protocol: str, clients: int, count: int, prefix: str
) -> dict[str, object]:
    repo_url = live.repo_url("bench-npm")
    bearer = f"Bearer {token}"
    basic_token = "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()
    one: Callable[[Connection, object, Run], Awaitable[None]]
    if protocol == "twine":
        jobs: list[object] = [twine_request(prefix, n, basic_token) for n in range(count)]
        one = twine_one
    elif protocol == "npm":
        jobs = [npm_request(prefix, n, repo_url, bearer) for n in range(count)]
        one = npm_one
    else:
        jobs = [oci_image(prefix, n) for n in range(count)]
        basic = "Basic " + base64.b64encode(f"admin:{token}".encode()).decode()

        async def token_for(connection: Connection) -> str:
            return await registry_token(connection, basic)

        one = oci_pusher(token_for)
    assert live.process is not None
    cpu0 = _tree_cpu(live.process.pid)
    load0 = os.getloadavg()[0]
    run, elapsed = asyncio.run(drive(clients, jobs, one, live.port))
    cpu = _tree_cpu(live.process.pid) - cpu0
    return {
        "rate": run.done / elapsed,
        "requests": run.requests / elapsed,
        "cpu_ms": 1000 * cpu / max(run.done, 1),
        "cpus": cpu / elapsed,
        "load": f"{load0:.1f}->{os.getloadavg()[0]:.1f}",
        "errors": run.errors,
        "done": run.done,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--count", type=int, default=1200, help="packages per protocol and database")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--protocols", default=",".join(PROTOCOLS))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    if set(databases) - {"sqlite", "postgresql"} or set(protocols) - set(PROTOCOLS):
        print("unknown database or protocol", file=sys.stderr)
        return 2
    results: dict[tuple[str, str], dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as tmp:
        for database in databases:
            with server(Path(tmp), database, args.workers) as (live, token):
                warm = f"warm{int(time.time())}"
                for protocol in protocols:
                    measure(live, token, protocol, args.clients, 3 * args.clients, warm)
                prefix = f"run{int(time.time())}"
                for protocol in protocols:
                    r = measure(live, token, protocol, args.clients, args.count, prefix)
                    results[(database, protocol)] = r
                    errors = r["errors"]
                    assert isinstance(errors, list)
                    print(
                        f"  {database:10} {protocol:6} {float(r['rate']):7,.0f} publishes/s "  # type: ignore[arg-type]
                        f"({float(r['requests']):,.0f} requests/s)  server {float(r['cpus']):.2f} CPUs, "  # type: ignore[arg-type]
                        f"{float(r['cpu_ms']):.2f} ms CPU per publish  load {r['load']}  "  # type: ignore[arg-type]
                        f"{len(errors)} errors {errors[:1]}",
                        flush=True,
                    )
                if set(protocols) == set(PROTOCOLS):
                    for problem in read_back(live, prefix, args.count):
                        print(f"    read back: {problem}")
    print()
    print(f"{args.clients} clients, {args.count} distinct packages per protocol, --workers {args.workers}")
    print("| database | protocol | publishes/s | requests/s | server CPUs | CPU ms/publish | load | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for (database, protocol), r in results.items():
        errors = r["errors"]
        assert isinstance(errors, list)
        print(
            f"| {database} | {protocol} | {float(r['rate']):,.0f} | {float(r['requests']):,.0f} | "  # type: ignore[arg-type]
            f"{float(r['cpus']):.2f} | {float(r['cpu_ms']):.2f} | {r['load']} | {len(errors) or '-'} |"  # type: ignore[arg-type]
        )
    return 1 if any(r["errors"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
