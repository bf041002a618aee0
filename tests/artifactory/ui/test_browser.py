"""The web UI in a real browser: Debian's Chromium driven by Playwright, headless, on SQLite and
PostgreSQL. Every page visited must log no console error (a CSP violation is one) and open no dialog.

Set ARTIFACTORY_UI_SCREENSHOTS=DIR to save screenshots of the main pages there (docs/ui/ holds them).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from artifactory.testing.server import ADMIN_PASSWORD, LiveServer
from tests.artifactory.ui.conftest import api, create_repo
from tests.formats.pypi.conftest import tool_env, twine_upload
from tests.formats.pypi.dists import wheel_bytes, wheel_name

CHROMIUM = "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
SHOTS = os.environ.get("ARTIFACTORY_UI_SCREENSHOTS", "")


class Watched:
    """A browser page that records console errors, uncaught exceptions and dialogs."""

    def __init__(self, page) -> None:
        self.page = page
        self.problems: list[str] = []
        page.on(
            "console",
            lambda m: self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"), d.dismiss()))

    def goto(self, url: str, status: int = 200):
        """Open a page that must answer `status` (Chromium logs the load of an error page itself as
        a console error: that one message is expected, any other is not)."""
        before = len(self.problems)
        response = self.page.goto(url)
        self.page.wait_for_load_state("load")
        assert response is not None and response.status == status, (url, response and response.status)
        if status >= 400:
            expected = (
                f"console error: Failed to load resource: the server responded with a status of {status}"
            )
            new = self.problems[before:]
            if expected in " ".join(new):
                new.remove(next(p for p in new if p.startswith(expected)))
            self.problems[before:] = new
        return response

    def shot(self, name: str) -> None:
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=False)

    def assert_clean(self) -> None:
        assert self.problems == [], self.problems


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def tab(chromium) -> Iterator[Watched]:
    context = chromium.new_context(
        permissions=["clipboard-read", "clipboard-write"], viewport={"width": 1280, "height": 860}
    )
    try:
        watched = Watched(context.new_page())
        yield watched
        watched.assert_clean()
    finally:
        context.close()


def sign_in(tab: Watched, server: LiveServer) -> None:
    tab.goto(f"{server.url}/")  # a browser asking for / lands on the UI
    assert tab.page.url == f"{server.url}/ui/"
    tab.page.click("text=Sign in")
    tab.shot("sign-in")
    tab.page.fill("input[name=username]", "admin")
    tab.page.fill("input[name=password]", ADMIN_PASSWORD)
    tab.page.click("form.stacked button[type=submit]")
    tab.page.wait_for_load_state("load")
    assert tab.page.locator(".who span").inner_text() == "admin"


def test_publish_find_and_install_a_package_through_the_ui(ui_server, tab, tmp_path):
    server = ui_server
    sign_in(tab, server)
    # create a PyPI repository with the admin form
    repo = f"py-{uuid.uuid4().hex[:6]}"
    tab.goto(f"{server.url}/ui/admin/repositories/new")
    tab.page.fill("input[name=name]", repo)
    tab.page.select_option("select[name=format]", "pypi")
    tab.page.select_option("select[name=type]", "hosted")
    tab.shot("new-repository")
    tab.page.click("form.stacked button[type=submit] >> text=Create")
    tab.page.wait_for_load_state("load")
    assert tab.page.url == f"{server.url}/ui/repository/{repo}/"
    # upload with twine, as a user would
    project = f"ui-demo-{uuid.uuid4().hex[:6]}"
    dist = tmp_path / "dist"
    dist.mkdir()
    wheel = dist / wheel_name(project, "1.0.0")
    wheel.write_bytes(wheel_bytes(project, "1.0.0"))
    env = tool_env(tmp_path / "home")
    uploaded = twine_upload(f"{server.url}/repository/{repo}/", [wheel], "admin", ADMIN_PASSWORD, env)
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr
    # find it by name, then by the wheel's sha256
    tab.goto(f"{server.url}/ui/search")
    tab.page.fill("input[name=q]", project[:10] + "*")
    tab.page.click("form.search button[type=submit]")
    tab.page.wait_for_load_state("load")
    assert tab.page.locator("table.results tbody tr").count() >= 1
    assert project in tab.page.locator("table.results").inner_text()
    tab.goto(f"{server.url}/ui/search")
    tab.page.fill("input[name=checksum]", hashlib.sha256(wheel.read_bytes()).hexdigest())
    tab.page.click("form.search button[type=submit]")
    tab.page.wait_for_load_state("load")
    rows = tab.page.locator("table.results tbody tr")
    assert rows.count() == 1
    tab.shot("search")
    # open its version page
    rows.first.locator("td:nth-child(2) a").click()
    tab.page.wait_for_load_state("load")
    assert "1.0.0" in tab.page.locator("h1").inner_text()
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() in tab.page.content()
    tab.shot("version")
    # copy the pip snippet with its button and use it with pip, for real
    tab.page.click("#setup-pip-install button.copy")
    tab.page.wait_for_selector("#setup-pip-install button.copy >> text=Copied")
    command = tab.page.evaluate("navigator.clipboard.readText()")
    assert command.startswith(f"pip install --index-url {server.url}/repository/{repo}/simple/")
    target = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", *shlex.split(command), "--no-cache-dir", "--target", str(target)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    module = project.replace("-", "_")
    assert (target / module / "__init__.py").read_text() == f'VALUE = "{project} 1.0.0"\n'
    # the repository page and its set-me-up
    tab.goto(f"{server.url}/ui/repository/{repo}/")
    assert project in tab.page.locator("table.list").inner_text()


def test_a_private_repository_is_invisible_when_signed_out(ui_server, tab):
    server = ui_server
    private = create_repo(server, "raw", name=f"private-{uuid.uuid4().hex[:6]}")
    with api(server) as admin:
        admin.put(f"/repository/{private}/plans.txt", content=b"secret plans")
    sign_in(tab, server)
    for path in (  # every other page, for console errors
        "/ui/tokens",
        "/ui/admin/",
        "/ui/admin/users",
        "/ui/admin/users/admin",
        "/ui/admin/roles",
        "/ui/admin/roles/anonymous",
        f"/ui/admin/repositories/{private}",
        f"/ui/repository/{private}/component?name=plans.txt",
        f"/ui/repository/{private}/version?name=plans.txt",
    ):
        tab.goto(server.url + path)
    tab.goto(f"{server.url}/ui/admin/settings")
    tab.page.uncheck("input[name=anonymous_read]")
    tab.page.click("form.stacked button[type=submit]")
    tab.page.wait_for_load_state("load")
    try:
        assert private in tab.goto(f"{server.url}/ui/").text()
        tab.page.click(".who button")  # sign out
        tab.page.wait_for_load_state("load")
        assert tab.page.locator(".who a").inner_text() == "Sign in"
        assert private not in tab.page.content()
        tab.goto(f"{server.url}/ui/repository/{private}/", status=404)
        assert "plans" not in tab.page.content()
        tab.goto(f"{server.url}/ui/search?q=plans")
        assert private not in tab.page.content()
    finally:
        with api(server) as admin:
            admin.put("/api/v1/settings", json={"anonymous_read": True})


def test_hostile_readmes_run_nothing_in_the_browser(ui_server, tab, tmp_path):
    server = ui_server
    repo = create_repo(server, "npm")
    from tests.formats.npm.helpers import publish_document

    evil = (
        '<script>alert(1)</script><img src=x onerror="alert(2)">[x](javascript:alert(3))"onmouseover=alert(4)'
    )
    document = publish_document("xss-demo", "1.0.0", manifest={"description": evil, "readme": evil})
    document["readme"] = f"# Demo\n\n{evil}\n\n<a href='javascript:alert(5)'>y</a>"
    with api(server) as admin:
        assert admin.put(f"/repository/{repo}/xss-demo", json=document).status_code in (200, 201)
    for path in (
        "/ui/search?q=xss-demo",
        f"/ui/repository/{repo}/",
        f"/ui/repository/{repo}/component?name=xss-demo",
        f"/ui/repository/{repo}/version?name=xss-demo&version=1.0.0",
    ):
        tab.goto(server.url + path)
        for link in tab.page.locator("main a").all():
            link.hover()
    assert tab.page.locator("article.readme h1").inner_text() == "Demo"
    assert tab.page.locator("article.readme img").count() == 0
    assert tab.page.locator("article.readme a").count() == 0
    assert tab.page.evaluate("document.querySelectorAll('script:not([src])').length") == 0


@pytest.mark.skipif(not SHOTS, reason="set ARTIFACTORY_UI_SCREENSHOTS=DIR to take screenshots")
def test_screenshots_of_the_main_pages(ui_sqlite, tab, tmp_path):
    """Not a check: a few repositories of every kind, then pictures of the pages that show them."""
    server = ui_sqlite
    hosted = create_repo(server, "pypi", name="python-internal")
    proxy = create_repo(server, "pypi", "proxy", name="python-upstream", url="http://127.0.0.1:9/simple/")
    create_repo(server, "pypi", "group", name="python", members=[hosted, proxy])
    create_repo(server, "npm", name="npm-internal")
    create_repo(server, "maven", name="maven-releases", version_policy="release")
    create_repo(server, "oci", name="containers")
    files = create_repo(server, "raw", name="files")
    readme = (
        "# acme-toolkit\n\nShared helpers for **ACME** services.\n\n## Install\n\n"
        "```\npip install acme-toolkit\n```\n\n| feature | since |\n|---|---|\n| retries | 1.0 |\n"
    )
    metadata = (
        "Metadata-Version: 2.1\nName: acme-toolkit\nVersion: 2.3.1\n"
        "Summary: Shared helpers for ACME services\n"
        "Author: Platform team\nLicense: Apache-2.0\nRequires-Python: >=3.11\n"
        "Project-URL: Source, https://git.example.invalid/acme/toolkit\n"
        f"Description-Content-Type: text/markdown\n\n{readme}"
    )
    dist = tmp_path / "dist"
    dist.mkdir()
    env = tool_env(tmp_path / "home")
    for name, version in (("acme-toolkit", "2.3.0"), ("acme-toolkit", "2.3.1"), ("acme-client", "0.9.0")):
        wheel = dist / wheel_name(name, version)
        text = metadata.replace("2.3.1", version).replace("acme-toolkit", name)
        wheel.write_bytes(wheel_bytes(name, version, metadata=text))
        result = twine_upload(f"{server.url}/repository/{hosted}/", [wheel], "admin", ADMIN_PASSWORD, env)
        assert result.returncode == 0, result.stdout + result.stderr
    with api(server) as admin:
        admin.put(f"/repository/{files}/installers/setup-1.0.exe", content=b"MZ" + b"0" * 5000)
    import httpx

    httpx.get(server.repo_url(proxy) + "simple/anything/")  # the upstream is down: the proxy says so
    sign_in(tab, server)
    tab.goto(f"{server.url}/ui/")
    tab.shot("repositories")
    tab.goto(f"{server.url}/ui/repository/{hosted}/")
    tab.shot("repository")
    tab.goto(f"{server.url}/ui/repository/{hosted}/version?name=acme-toolkit&version=2.3.1")
    tab.page.set_viewport_size({"width": 1280, "height": 1300})
    tab.shot("version")
    tab.goto(f"{server.url}/ui/search?q=acme*")
    tab.shot("search")
