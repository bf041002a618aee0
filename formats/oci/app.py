"""The /v2/ API as one ASGI app: matches the distribution spec's endpoints (names contain slashes,
so the path is matched from its end), renders every error in the spec's JSON, and stamps every
response with `Docker-Distribution-API-Version`."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from artifactory_formats.oci import blobs, discovery, manifests, tokens, uploads
from artifactory_formats.oci.errors import API_VERSION, OCIError, translate
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from artifactory.plugin import HTTPProblem

log = logging.getLogger(__name__)
Handler = Callable[..., Awaitable[Response]]


@dataclass(frozen=True)
class Endpoint:
    pattern: re.Pattern[str]
    methods: dict[str, Handler]


def _e(pattern: str, **methods: Handler) -> Endpoint:
    return Endpoint(re.compile(pattern), {m.upper(): h for m, h in methods.items()})


NAME = r"(?P<name>.+?)"
ENDPOINTS = (
    _e(r"^/v2/?$", get=tokens.base, head=tokens.base),
    _e(r"^/v2/token$", get=tokens.token, post=tokens.token),
    _e(r"^/v2/_catalog$", get=discovery.catalog),
    _e(rf"^/v2/{NAME}/blobs/uploads/?$", post=uploads.start),
    _e(
        rf"^/v2/{NAME}/blobs/uploads/(?P<session_id>[^/]+)$",
        get=uploads.status,
        patch=uploads.patch,
        put=uploads.finish,
        delete=uploads.cancel,
    ),
    _e(rf"^/v2/{NAME}/blobs/(?P<digest>[^/]+)$", get=blobs.get, head=blobs.get, delete=blobs.delete),
    _e(
        rf"^/v2/{NAME}/manifests/(?P<reference>[^/]+)$",
        get=manifests.get,
        head=manifests.get,
        put=manifests.put,
        delete=manifests.delete,
    ),
    _e(rf"^/v2/{NAME}/tags/list$", get=discovery.tags),
    _e(rf"^/v2/{NAME}/referrers/(?P<digest>[^/]+)$", get=discovery.referrers),
)


async def dispatch(request: Request) -> Response:
    path = request.scope["path"]
    for endpoint in ENDPOINTS:
        match = endpoint.pattern.match(path)
        if match is None:
            continue
        handler = endpoint.methods.get(request.method)
        if handler is None:
            allowed = ", ".join(sorted(endpoint.methods))
            raise OCIError(
                "UNSUPPORTED", f"{request.method} is not supported here", headers={"Allow": allowed}
            )
        return await handler(request, **match.groupdict())
    raise OCIError("NAME_UNKNOWN", f"no such endpoint: {path}", status=404)


class OciApp:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await dispatch(request)
        except OCIError as error:
            response = error.render(request)
        except HTTPProblem as problem:
            response = translate(problem).render(request)
        for key, value in API_VERSION.items():
            response.headers.setdefault(key, value)
        await response(scope, receive, send)
