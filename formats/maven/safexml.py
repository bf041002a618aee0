"""The one way this format parses XML it did not write: POMs, plugin descriptors, upstream metadata.

lxml with entity resolution, DTD loading and network access off, no huge trees, a size bound, and any
DOCTYPE refused outright: a POM never needs one, and refusing it stops XXE and entity expansion
("billion laughs") before anything is evaluated.
"""

from __future__ import annotations

from lxml import etree

MAX_XML_BYTES = 8 * 1024 * 1024


class UnsafeXML(ValueError):
    """XML that is malformed, too large or declares a DOCTYPE; the message says which."""


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse(data: bytes, what: str = "document", limit: int = MAX_XML_BYTES) -> etree._Element:
    if len(data) > limit:
        raise UnsafeXML(f"{what} is larger than {limit} bytes")
    # Checked on the bytes too: a DOCTYPE is refused even where a parser would skip it.
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise UnsafeXML(f"{what} declares a DOCTYPE or entities, which are not allowed")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise UnsafeXML(f"{what} is not well-formed XML: {exc}") from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise UnsafeXML(f"{what} declares a DOCTYPE or entities, which are not allowed")
    for node in root.iter():
        if isinstance(node, etree._Entity):
            raise UnsafeXML(f"{what} references an entity, which is not allowed")
    return root


def local(tag: object) -> str:
    """An element's name without its namespace ("project" for "{http://maven...}project")."""
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def child(element: etree._Element, name: str) -> etree._Element | None:
    for node in element:
        if local(node.tag) == name:
            return node
    return None


def text(element: etree._Element | None, name: str) -> str:
    node = child(element, name) if element is not None else None
    return (node.text or "").strip() if node is not None else ""


def children(element: etree._Element | None, name: str) -> list[etree._Element]:
    return [] if element is None else [node for node in element if local(node.tag) == name]
