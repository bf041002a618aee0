"""The admin API of cleanup policies: /api/v1/cleanup-policies (admin only). docs/cleanup.md."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from artifactory import cleanup
from artifactory.http.bodies import ADMIN_BODY_BYTES, read_json
from artifactory.http.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from artifactory.security.principal import Principal
from artifactory.state import AppState


def _state(request: Request) -> AppState:
    return request.scope["artifactory.state"]  # type: ignore[no-any-return]


async def _admin(request: Request) -> Principal:
    principal = await _state(request).principal(request)
    if principal.anonymous:
        raise Unauthorized("this call needs a user")
    if not principal.is_admin:
        raise Forbidden("this call needs the admin role")
    return principal


async def _policies(state: AppState) -> dict[str, cleanup.Policy]:
    return await state.engine.db_call(cleanup.load_policies, state.db)


async def list_policies(request: Request) -> Response:
    await _admin(request)
    state = _state(request)
    policies = await _policies(state)
    repos = await state.engine.db_call(state.engine.repos.all)
    return JSONResponse(
        [
            {**p.as_dict(), "repositories": cleanup.attached(repos, p.name)}
            for _, p in sorted(policies.items())
        ]
    )


async def put_policy(request: Request) -> Response:
    principal = await _admin(request)
    state = _state(request)
    name = request.path_params["name"]
    body = await read_json(request, ADMIN_BODY_BYTES)
    if isinstance(body, dict) and "name" in body and body["name"] != name:
        raise BadRequest(f"the body names policy {body['name']!r} but the path names {name!r}")
    try:
        policy = cleanup.parse_policy(name, body)
        created = await state.engine.db_call(cleanup.save_policy, state.db, policy)
    except cleanup.PolicyError as exc:
        raise BadRequest(str(exc)) from None
    await state.record(principal.username, "cleanup_policy.saved", details=policy.as_dict())
    return JSONResponse(policy.as_dict(), status_code=201 if created else 200)


async def delete_policy(request: Request) -> Response:
    principal = await _admin(request)
    state = _state(request)
    name = request.path_params["name"]
    repos = await state.engine.db_call(state.engine.repos.all)
    users = cleanup.attached(repos, name)
    if users:
        raise Conflict(
            f"cleanup policy {name!r} is attached to {', '.join(users)}: "
            "remove it from their cleanup_policies first"
        )
    if not await state.engine.db_call(cleanup.delete_policy, state.db, name):
        raise NotFound(f"no cleanup policy {name!r}")
    await state.record(principal.username, "cleanup_policy.deleted", details={"name": name})
    return Response(status_code=204)


async def preview_policy(request: Request) -> Response:
    """A dry run of one policy: on ?repository=, else on every repository it is attached to."""
    await _admin(request)
    state = _state(request)
    name = request.path_params["name"]
    unknown = sorted(set(request.query_params) - {"repository"})
    if unknown:
        raise BadRequest(f"unknown parameters: {', '.join(unknown)}; known: repository")
    policy = (await _policies(state)).get(name)
    if policy is None:
        raise NotFound(f"no cleanup policy {name!r}")
    repository = request.query_params.get("repository")
    if repository is None:
        repos = await state.engine.db_call(state.engine.repos.all)
        targets = cleanup.attached(repos, name)
    else:
        if state.engine.repos.get(repository) is None:
            raise BadRequest(f"no repository {repository!r}")
        targets = [repository]
    report = cleanup.Report(dry_run=True)
    for target in targets:
        part = await cleanup.run(state, target, dry_run=True, policies=[policy])
        report.repositories += part.repositories
        report.removals += part.removals
        report.kept += part.kept
        report.errors += part.errors
        report.seconds += part.seconds
    return JSONResponse(report.as_dict())


__all__ = ["delete_policy", "list_policies", "preview_policy", "put_policy"]
