"""What a version page says about a package: summary, links, and its README rendered safely.

Everything here is attacker-controlled (whoever uploaded the package wrote it). Markdown is rendered
with raw HTML disabled and then sanitised to a small HTML subset by nh3 (links only to http, https and
mailto, no images: the page's CSP would refuse them anyway); other text is shown as text. Links
outside the README (a homepage) are kept only when they are http(s) URLs.

Per format, keyed by format id: PyPI (the core metadata of a wheel, stored beside it), npm (the
packument's readme), Maven (the POM's name, description and url). A format can supply its own with a
`describe_component(component, read)` method on its Format class; that takes precedence.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import nh3
from lxml import etree
from markdown_it import MarkdownIt
from markupsafe import Markup, escape

from artifactory.formats import Format

MAX_README_BYTES = 2 * 1024 * 1024
MAX_DOCUMENT_BYTES = 32 * 1024 * 1024
MAX_POM_BYTES = 1024 * 1024
ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt", "em",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "kbd", "li", "ol", "p", "pre", "s", "span",
    "strong", "sub", "summary", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "abbr": {"title"}, "td": {"align"}, "th": {"align"}}
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])

# read(path, limit) -> the bytes of an asset of the version's repository, or None.
Reader = Callable[[str, int], Awaitable[bytes | None]]


@dataclass
class Description:
    summary: str = ""
    readme: Markup | None = None
    links: list[tuple[str, str]] = field(default_factory=list)  # (label, URL), http(s) only
    facts: list[tuple[str, str]] = field(default_factory=list)  # (label, text)


def render_markdown(text: str) -> Markup:
    html = _MARKDOWN.render(text[:MAX_README_BYTES])
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="nofollow noopener noreferrer",
        strip_comments=True,
    )
    return Markup(clean)  # noqa: S704 - sanitised by nh3 just above


def render_text(text: str) -> Markup:
    return Markup("<pre class='readme-text'>") + escape(text[:MAX_README_BYTES]) + Markup("</pre>")


def render_readme(text: str, content_type: str = "") -> Markup | None:
    if not text.strip():
        return None
    if content_type.split(";")[0].strip().lower() in ("text/markdown", "text/x-markdown"):
        return render_markdown(text)
    return render_text(text)


def web_link(value: Any) -> str | None:
    """`value` if it is an absolute http(s) URL (never javascript:, data: or the like)."""
    if not isinstance(value, str) or len(value) > 2000:
        return None
    url = value.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


async def describe(
    fmt: Format | None, format_id: str, component: Mapping[str, Any], read: Reader
) -> Description:
    """`component`: namespace, name, version, attributes, assets (dicts with path and attributes)."""
    own = getattr(fmt, "describe_component", None)
    if callable(own):
        result = own(component, read)
        if hasattr(result, "__await__"):
            result = await result
        if isinstance(result, Description):
            return result
    builder = BUILDERS.get(format_id)
    if builder is None:
        return Description()
    return await builder(component, read)


async def _pypi(component: Mapping[str, Any], read: Reader) -> Description:
    facts = component.get("attributes") or {}
    found = Description(summary=str(facts.get("summary") or ""))
    for label, key in (("Author", "author"), ("License", "license_expression"), ("License", "license")):
        if facts.get(key) and not any(lbl == label for lbl, _ in found.facts):
            found.facts.append((label, str(facts[key])[:200]))
    if facts.get("requires_python"):
        found.facts.append(("Requires Python", str(facts["requires_python"])[:100]))
    home = web_link(facts.get("home_page"))
    if home:
        found.links.append(("Homepage", home))
    urls = facts.get("project_urls") or []
    if isinstance(urls, dict):
        urls = [f"{k}, {v}" for k, v in urls.items()]
    for entry in urls if isinstance(urls, list) else []:
        label, _, url = str(entry).partition(",")
        link = web_link(url)
        if link:
            found.links.append((label.strip()[:60] or "Link", link))
    # The long description lives in the core metadata, which PyPI uploads of wheels keep beside the
    # file (PEP 658); an sdist-only release shows its summary.
    for asset in component.get("assets") or ():
        if str(asset.get("path", "")).endswith(".metadata"):
            continue
        pypi = (asset.get("attributes") or {}).get("pypi") or {}
        if pypi.get("metadata_sha256"):
            data = await read(str(asset["path"]) + ".metadata", MAX_README_BYTES)
            if data:
                found.readme = _pypi_description(data, str(facts.get("description_content_type") or ""))
                break
    return found


def _pypi_description(data: bytes, content_type: str) -> Markup | None:
    from packaging.metadata import parse_email

    raw, _unparsed = parse_email(data)
    text = raw.get("description") or ""
    kind = content_type or str(raw.get("description_content_type") or "")
    return render_readme(str(text), kind)


async def _npm(component: Mapping[str, Any], read: Reader) -> Description:
    facts = component.get("attributes") or {}
    found = Description(summary=str(facts.get("description") or ""))
    if facts.get("publisher"):
        found.facts.append(("Published by", str(facts["publisher"])[:100]))
    keywords = facts.get("keywords")
    if isinstance(keywords, list) and keywords:
        found.facts.append(("Keywords", ", ".join(str(k)[:50] for k in keywords[:30])))
    namespace, name = str(component.get("namespace") or ""), str(component.get("name") or "")
    path = f"{namespace}%2F{name}" if namespace else name
    data = await read(path, MAX_DOCUMENT_BYTES)
    if data:
        try:
            document = json.loads(data)
        except ValueError:
            document = None
        if isinstance(document, dict):
            version = (document.get("versions") or {}).get(component.get("version") or "") or {}
            readme = version.get("readme") if isinstance(version, dict) else None
            readme = readme or document.get("readme")
            if isinstance(readme, str):
                found.readme = render_markdown(readme)
            home = web_link((version or {}).get("homepage") or document.get("homepage"))
            if home:
                found.links.append(("Homepage", home))
            repository = (version or {}).get("repository") or document.get("repository")
            repository_url = web_link(repository.get("url") if isinstance(repository, dict) else repository)
            if repository_url:
                found.links.append(("Repository", repository_url))
    return found


async def _maven(component: Mapping[str, Any], read: Reader) -> Description:
    found = Description()
    pom = next((a for a in component.get("assets") or () if str(a.get("path", "")).endswith(".pom")), None)
    if pom is None:
        return found
    data = await read(str(pom["path"]), MAX_POM_BYTES)
    if not data:
        return found
    fields = _pom_fields(data)
    if fields.get("name"):
        found.facts.append(("Name", fields["name"][:200]))
    found.summary = fields.get("description", "")[:4000]
    link = web_link(fields.get("url"))
    if link:
        found.links.append(("Homepage", link))
    return found


def _pom_fields(data: bytes) -> dict[str, str]:
    """name, description and url of a POM, read without DTDs, entities or network (never XXE)."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        return {}
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True
    )
    try:
        root = etree.fromstring(data, parser=parser)  # noqa: S320 - entities, DTDs and network are off
    except etree.XMLSyntaxError:
        return {}
    found = {}
    for child in root:
        if not isinstance(child.tag, str):
            continue
        tag = etree.QName(child).localname
        if tag in ("name", "description", "url") and child.text:
            found[tag] = " ".join(child.text.split())
    return found


BUILDERS: dict[str, Callable[[Mapping[str, Any], Reader], Awaitable[Description]]] = {
    "pypi": _pypi,
    "npm": _npm,
    "maven": _maven,
}
