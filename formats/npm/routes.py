"""The npm registry API below a repository's root (what `registry=.../repository/NAME/` reaches)."""

from __future__ import annotations

from collections.abc import Sequence

from artifactory_formats.npm import accounts, packages, search, services
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

READ = ["GET", "HEAD"]


async def not_allowed(request: Request) -> Response:
    raise packages.not_allowed(request)


ROUTES: Sequence[BaseRoute] = (
    Route("/-/ping", accounts.ping, methods=READ),
    Route("/-/whoami", accounts.whoami, methods=READ),
    Route("/-/v1/login", accounts.web_login, methods=["POST"]),
    Route("/-/v1/search", search.search, methods=READ),
    Route("/-/user/org.couchdb.user:{user}", accounts.user_document, methods=READ),
    Route("/-/user/org.couchdb.user:{user}", accounts.login, methods=["PUT"]),
    Route("/-/user/org.couchdb.user:{user}/-rev/{rev}", accounts.login, methods=["PUT"]),
    Route("/-/user/token/{token}", accounts.logout, methods=["DELETE"]),
    Route("/-/npm/v1/tokens", accounts.list_tokens, methods=READ),
    Route("/-/npm/v1/tokens", accounts.create_token, methods=["POST"]),
    Route("/-/npm/v1/tokens/token/{key}", accounts.revoke_token, methods=["DELETE"]),
    Route("/-/npm/v1/security/advisories/bulk", services.audit, methods=["POST"]),
    Route("/-/npm/v1/security/audits", services.audit, methods=["POST"]),
    Route("/-/npm/v1/security/audits/quick", services.audit, methods=["POST"]),
    Route("/-/package/{package:path}/dist-tags", packages.list_tags, methods=READ),
    Route("/-/package/{package:path}/dist-tags/{tag}", packages.put_tag, methods=["PUT", "POST"]),
    Route("/-/package/{package:path}/dist-tags/{tag}", packages.delete_tag, methods=["DELETE"]),
    Route("/{path:path}", packages.get_path, methods=READ),
    Route("/{path:path}", packages.put_path, methods=["PUT"]),
    Route("/{path:path}", packages.delete_path, methods=["DELETE"]),
    # Any other method (a Route without methods takes only GET and HEAD).
    Route("/{path:path}", not_allowed, methods=["POST", "PATCH", "OPTIONS", "TRACE", "CONNECT"]),
)
