"""The web UI over plain HTTP against a real server, on SQLite and PostgreSQL: what each page shows,
what it hides, and what it does with hostile names, READMEs and links."""

from __future__ import annotations

import hashlib
import re
import uuid

import httpx
import pytest

from tests.artifactory.ui.conftest import Browser, api, assert_inert, create_repo, create_user
from tests.formats.npm.helpers import publish_document
from tests.formats.pypi.conftest import post_upload
from tests.formats.pypi.dists import wheel_bytes, wheel_name

EVIL = "<script>alert(1)</script>\"onmouseover=alert(2) x='"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- the way in ------------------------------------------------------------------------------------
def test_a_browser_asking_for_root_is_sent_to_the_ui_and_an_api_client_gets_json(ui_server):
    page = httpx.get(f"{ui_server.url}/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 302 and page.headers["location"] == "./ui/"
    api = httpx.get(f"{ui_server.url}/", headers={"Accept": "application/json"})
    assert api.status_code == 404 and api.json() == {"error": "not found: /"}
    landed = httpx.get(f"{ui_server.url}/", headers={"Accept": "text/html"}, follow_redirects=True)
    assert landed.status_code == 200 and "<h1>Repositories</h1>" in landed.text


def test_pages_forbid_inline_script_and_load_script_and_style_from_files(browser):
    page = browser.get("/ui/")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "default-src 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.S)
    assert scripts and all('src="' in attrs and not body.strip() for attrs, body in scripts)
    assert "style=" not in page.text and "<style" not in page.text
    for link in re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', page.text):
        asset = browser.http.get(link)
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(
            ("text/css", "text/javascript")
        )
    assert browser.http.get("/ui/static/../__init__.py").status_code == 404


# -- repositories ----------------------------------------------------------------------------------
def test_repository_list_shows_format_type_counts_and_stored_bytes(ui_server, browser):
    name = create_repo(ui_server, "raw")
    with api(ui_server) as admin:
        assert admin.put(f"/repository/{name}/a/one.txt", content=b"12345").status_code == 201
        assert admin.put(f"/repository/{name}/a/two.txt", content=b"1234567").status_code == 201
    page = browser.get("/ui/")
    row = re.search(
        rf'<tr>\s*<td><a href="/ui/repository/{name}/">{name}</a></td>(.*?)</tr>', page.text, re.S
    )
    assert row, page.text
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    assert cells[:5] == ["raw", "hosted", "2", "2", "12 B"], cells


def test_repository_list_shows_proxy_health_and_the_last_upstream_error(ui_server, browser):
    name = create_repo(ui_server, "raw", "proxy", url="http://127.0.0.1:9/", block_after_failures=1)
    assert httpx.get(ui_server.repo_url(name) + "missing.txt").status_code in (404, 502, 504)
    page = browser.get("/ui/")
    row = re.search(rf"{name}</a></td>(.*?)</tr>", page.text, re.S).group(1)
    assert "blocked until" in row or "recent failures" in row, row
    detail = browser.get(f"/ui/repository/{name}/")
    assert "Last upstream error" in detail.text and "ConnectError" in detail.text


def test_a_private_repository_is_invisible_when_signed_out_and_shown_to_its_reader(ui_server):
    name = create_repo(ui_server, "raw", name=unique("private"))
    with api(ui_server) as admin:
        admin.put(f"/repository/{name}/secret.txt", content=b"secret")
        role = unique("reader")
        admin.post(
            "/api/v1/roles", json={"name": role, "privileges": [{"repositories": name, "actions": ["read"]}]}
        )
        assert admin.put("/api/v1/settings", json={"anonymous_read": False}).status_code == 200
    user, password = create_user(ui_server, [role])
    outsider = Browser(ui_server)
    reader = Browser(ui_server)
    try:
        assert reader.login(user, password).status_code == 303
        for path in ("/ui/", "/ui/search?q=secret", f"/ui/search?repository={name}"):
            page = outsider.get(path)
            assert page.status_code == 200 and name not in page.text, path
        for path in (f"/ui/repository/{name}/", f"/ui/repository/{name}/version?name=secret.txt"):
            page = outsider.get(path)
            assert page.status_code == 404 and "secret" not in page.text.replace(name, ""), path
            assert "www-authenticate" not in page.headers  # a page never pops up a Basic-auth prompt
        assert name in reader.get("/ui/").text
        assert "secret.txt" in reader.get(f"/ui/repository/{name}/").text
        assert "secret.txt" in reader.get("/ui/search", params={"q": "secret"}).text
    finally:
        with api(ui_server) as admin:
            admin.put("/api/v1/settings", json={"anonymous_read": True})
        outsider.close()
        reader.close()


def test_components_page_filters_by_name_and_pages_with_a_cursor(ui_server, browser):
    name = create_repo(ui_server, "raw")
    with api(ui_server) as admin:
        for i in range(55):
            admin.put(f"/repository/{name}/f{i:03d}.txt", content=b"x")
        admin.put(f"/repository/{name}/other.bin", content=b"y")
    first = browser.get(f"/ui/repository/{name}/")
    names = re.findall(r"component\?name=([^\"&]+)", first.text)
    assert len(names) == 50 and names[0] == "f000.txt"
    following = re.search(r'<a rel="next" href="([^"]+)"', first.text).group(1).replace("&amp;", "&")
    second = browser.get(following)
    rest = re.findall(r"component\?name=([^\"&]+)", second.text)
    assert rest == [f"f{i:03d}.txt" for i in range(50, 55)] + ["other.bin"]
    assert 'rel="next"' not in second.text
    filtered = browser.get(f"/ui/repository/{name}/", params={"q": "OTHER"})
    assert re.findall(r"component\?name=([^\"&]+)", filtered.text) == ["other.bin"]
    prefixed = browser.get(f"/ui/repository/{name}/", params={"q": "f05*"})
    assert len(re.findall(r"component\?name=([^\"&]+)", prefixed.text)) == 5
    assert browser.get(f"/ui/repository/{name}/", params={"after": "!!"}).status_code == 400


def test_version_page_shows_size_digests_content_type_and_who_uploaded_it(ui_server, browser):
    name = create_repo(ui_server, "raw")
    role = unique("writer")
    with api(ui_server) as admin:
        admin.post(
            "/api/v1/roles",
            json={"name": role, "privileges": [{"repositories": name, "actions": ["read", "write"]}]},
        )
    user, password = create_user(ui_server, [role])
    body = b"the bytes of a release\n"
    with ui_server.client(auth=(user, password)) as writer:
        assert writer.put(f"/repository/{name}/dist/tool-1.0.tar.gz", content=body).status_code == 201
    page = browser.get(
        f"/ui/repository/{name}/version", params={"name": "dist/tool-1.0.tar.gz", "version": ""}
    )
    assert page.status_code == 200, page.text
    for digest in (hashlib.sha256(body), hashlib.sha1(body), hashlib.md5(body)):  # noqa: S324
        assert digest.hexdigest() in page.text
    assert f"({len(body)} bytes)" in page.text
    assert f"by <strong>{user}</strong>" in page.text
    assert "application/" in page.text
    assert f"{ui_server.url}/repository/{name}/dist/tool-1.0.tar.gz" in page.text


def test_group_pages_say_which_member_each_item_comes_from(ui_server, browser):
    first, second = create_repo(ui_server, "raw"), create_repo(ui_server, "raw")
    group = create_repo(ui_server, "raw", "group", members=[first, second])
    with api(ui_server) as admin:
        admin.put(f"/repository/{first}/shared.txt", content=b"first")
        admin.put(f"/repository/{second}/shared.txt", content=b"second")
        admin.put(f"/repository/{second}/only-second.txt", content=b"2")
    page = browser.get(f"/ui/repository/{group}/")
    rows = dict(
        re.findall(
            r"component\?name=([^\"&]+)[^<]*>[^<]*</a></td>.*?<td>([^<]*)</td>\s*</tr>", page.text, re.S
        )
    )
    assert rows == {"only-second.txt": second, "shared.txt": f"{first}, {second}"}, page.text
    version = browser.get(f"/ui/repository/{group}/version", params={"name": "shared.txt", "version": ""})
    assert f">{first}</a> (hosted); also in {second}." in version.text
    assert hashlib.sha256(b"first").hexdigest() in version.text
    assert hashlib.sha256(b"second").hexdigest() not in version.text
    versions = browser.get(f"/ui/repository/{group}/component", params={"name": "shared.txt"})
    assert f">{first}</a></td>" in versions.text and f">{second}</a></td>" in versions.text


# -- descriptions and hostile input ------------------------------------------------------------------
def test_pypi_long_description_is_rendered_as_safe_html(ui_server, browser):
    repo = create_repo(ui_server, "pypi")
    project = unique("evil")
    readme = (
        f"# Title {EVIL}\n\n<script>alert(3)</script>\n\n<img src=x onerror=alert(4)>\n\n"
        "[click](javascript:alert(5)) [ok](https://example.invalid/docs) ![pic](https://example.invalid/p.png)\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n"
    )
    metadata = (
        f"Metadata-Version: 2.1\nName: {project}\nVersion: 1.0\nSummary: {EVIL}\n"
        f"Home-page: javascript:alert(6)\nProject-URL: Docs, javascript:alert(7)\n"
        f"Project-URL: Source, https://example.invalid/src\nAuthor: {EVIL}\n"
        f"Description-Content-Type: text/markdown\n\n{readme}"
    )
    data = wheel_bytes(project, "1.0", metadata=metadata)
    response = post_upload(ui_server, repo, wheel_name(project, "1.0"), data, name=project, version="1.0")
    assert response.status_code == 200, response.text
    page = browser.get(f"/ui/repository/{repo}/version", params={"name": project.lower(), "version": "1.0"})
    assert page.status_code == 200, page.text
    assert_inert(page.text)
    readme_html = page.text.split('<article class="readme">', 1)[1].split("</article>", 1)[0]
    assert "<h1>Title &lt;script&gt;" in readme_html  # rendered Markdown, escaped text
    assert "<table>" in readme_html and "<td>1</td>" in readme_html
    assert '<a href="https://example.invalid/docs" rel="nofollow noopener noreferrer">ok</a>' in readme_html
    assert "<img" not in readme_html and "javascript" not in readme_html.replace("javascript:alert(", "")
    assert 'href="https://example.invalid/src"' in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text  # the summary, as text


def test_npm_readme_and_homepage_are_escaped(ui_server, browser):
    repo = create_repo(ui_server, "npm")
    manifest = {
        "description": EVIL,
        "homepage": "javascript:alert(1)",
        "readme": f"# Hi\n\n{EVIL}\n\n[x](javascript:y)",
    }
    document = publish_document("evil-pkg", "1.0.0", manifest=manifest)
    document["readme"] = manifest["readme"]
    with api(ui_server) as admin:
        assert admin.put(f"/repository/{repo}/evil-pkg", json=document).status_code in (200, 201)
    page = browser.get(f"/ui/repository/{repo}/version", params={"name": "evil-pkg", "version": "1.0.0"})
    assert page.status_code == 200, page.text
    assert_inert(page.text)
    assert "<h1>Hi</h1>" in page.text and "&lt;script&gt;alert(1)" in page.text
    assert "Homepage" not in page.text


def test_maven_pom_name_and_description_are_shown_escaped(ui_server, browser):
    repo = create_repo(ui_server, "maven")
    pom = (
        b'<?xml version="1.0"?><project xmlns="http://maven.apache.org/POM/4.0.0">'
        b"<modelVersion>4.0.0</modelVersion>"
        b"<groupId>org.example</groupId><artifactId>evil</artifactId><version>1.0</version>"
        b"<name>&lt;script&gt;alert(1)&lt;/script&gt;</name>"
        b"<description>\"onmouseover=alert(2) x='</description>"
        b"<url>javascript:alert(3)</url></project>"
    )
    with api(ui_server) as admin:
        assert (
            admin.put(f"/repository/{repo}/org/example/evil/1.0/evil-1.0.pom", content=pom).status_code == 201
        )
    page = browser.get(
        f"/ui/repository/{repo}/version",
        params={"namespace": "org.example", "name": "evil", "version": "1.0"},
    )
    assert page.status_code == 200, page.text
    assert_inert(page.text)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text and "&#34;onmouseover=alert(2)" in page.text


def test_hostile_file_names_are_escaped_everywhere_they_are_shown(ui_server, browser):
    name = create_repo(ui_server, "raw")
    path = 'x/<script>alert(1)</script>"onmouseover=alert(2).txt'
    with api(ui_server) as admin:
        response = admin.put(
            f"/repository/{name}/x/%3Cscript%3Ealert(1)%3C/script%3E%22onmouseover=alert(2).txt", content=b"1"
        )
        assert response.status_code == 201, response.text
    for page in (
        browser.get(f"/ui/repository/{name}/"),
        browser.get("/ui/search", params={"q": "onmouseover", "repository": name}),
        browser.get(f"/ui/repository/{name}/component", params={"name": path}),
        browser.get(f"/ui/repository/{name}/version", params={"name": path}),
    ):
        assert page.status_code == 200, page.text
        assert_inert(page.text)
        assert "x/&lt;script&gt;alert(1)&lt;/script&gt;&#34;onmouseover=alert(2).txt" in page.text


# -- search ------------------------------------------------------------------------------------------
def test_search_page_finds_by_name_and_by_any_checksum_and_links_to_the_version(ui_server, browser):
    name = create_repo(ui_server, "raw")
    body = uuid.uuid4().hex.encode()
    marker = unique("needle")
    with api(ui_server) as admin:
        admin.put(f"/repository/{name}/{marker}.bin", content=body)
    for params in (
        {"q": marker.upper()},
        {"q": f"{marker[:8]}*"},
        {"checksum": hashlib.sha256(body).hexdigest()},
        {"checksum": hashlib.sha1(body).hexdigest().upper()},
        {"checksum": hashlib.md5(body).hexdigest()},  # noqa: S324
    ):
        page = browser.get("/ui/search", params=params)
        assert page.status_code == 200, (params, page.text)
        assert f"/ui/repository/{name}/version?name={marker}.bin" in page.text, params
    assert browser.get("/ui/search", params={"checksum": "abc"}).status_code == 400
    assert browser.get("/ui/search", params={"sha265": "abc"}).status_code == 400


# -- set me up ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fmt, expected",
    [
        (
            "pypi",
            [
                "index-url = {url}simple/",
                "[[tool.uv.index]]",
                "poetry source add",
                "[[tool.pdm.source]]",
                "repository = {url}",
            ],
        ),
        ("npm", ["registry={url}", 'registry "{url}"', 'npmRegistryServer: "{url}"']),
        (
            "maven",
            [
                "<mirrorOf>*</mirrorOf>",
                "<url>{url}</url>",
                "<distributionManagement>",
                'url = uri("{url}")',
                "url '{url}'",
            ],
        ),
        ("oci", ["docker login {host}", "podman login", "skopeo"]),
    ],
)
def test_set_me_up_is_filled_in_with_this_servers_url_and_the_repository(ui_server, browser, fmt, expected):
    name = create_repo(ui_server, fmt)
    page = browser.get(f"/ui/repository/{name}/")
    url = f"{ui_server.url}/repository/{name}/"
    host = ui_server.url.split("://", 1)[1]
    text = page.text.replace("&#34;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&#39;", "'")
    for fragment in expected:
        assert fragment.format(url=url, host=host) in text, fragment
    if fmt == "npm":
        assert 'unsafeHttpWhitelist:\n  - "127.0.0.1"' in text
