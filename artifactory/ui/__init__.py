"""The web UI: server-rendered pages under /ui/ (browse, search, set-me-up, sign-in, admin).

Starlette + Jinja2, one CSS file and a few lines of JavaScript for copy buttons, both served from
/ui/static/ so the Content-Security-Policy can forbid inline script. Every page works without
JavaScript. The UI signs in with a session cookie (see session.py); the API keeps Basic and Bearer.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from artifactory.ui import account, admin, pages
from artifactory.ui.web import Handler, page


def _get(path: str, handler: Handler, **kwargs: bool) -> Route:
    return Route(path, page(handler, **kwargs), methods=["GET"])


def _post(path: str, handler: Handler, **kwargs: bool) -> Route:
    return Route(path, page(handler, **kwargs), methods=["POST"])


routes: list[BaseRoute] = [
    Route("/", pages.root, methods=["GET"]),
    Route("/ui/static/{file}", pages.static, methods=["GET"]),
    _get("/ui/", pages.repositories),
    _get("/ui/search", pages.search_page),
    _get("/ui/repository/{name}/", pages.repository),
    _get("/ui/repository/{name}/component", pages.component),
    _get("/ui/repository/{name}/version", pages.version),
    _get("/ui/login", account.login_form),
    _post("/ui/login", account.login),
    _post("/ui/logout", account.logout),
    _get("/ui/tokens", account.tokens_page, signed_in=True),
    _post("/ui/tokens", account.create_token, signed_in=True),
    _post("/ui/tokens/{token_id}/revoke", account.revoke_token, signed_in=True),
    _get("/ui/admin/", admin.index, admin=True),
    _get("/ui/admin/repositories/new", admin.new_repository, admin=True),
    _post("/ui/admin/repositories/new", admin.create_repository, admin=True),
    _get("/ui/admin/repositories/{name}", admin.edit_repository, admin=True),
    _post("/ui/admin/repositories/{name}", admin.update_repository, admin=True),
    _post("/ui/admin/repositories/{name}/delete", admin.delete_repository, admin=True),
    _get("/ui/admin/users", admin.users_page, admin=True),
    _post("/ui/admin/users", admin.create_user, admin=True),
    _get("/ui/admin/users/{name}", admin.user_form, admin=True),
    _post("/ui/admin/users/{name}", admin.update_user, admin=True),
    _post("/ui/admin/users/{name}/delete", admin.delete_user, admin=True),
    _get("/ui/admin/roles", admin.roles_page, admin=True),
    _post("/ui/admin/roles", admin.create_role, admin=True),
    _get("/ui/admin/roles/{name}", admin.role_form, admin=True),
    _post("/ui/admin/roles/{name}", admin.update_role, admin=True),
    _post("/ui/admin/roles/{name}/delete", admin.delete_role, admin=True),
    _get("/ui/admin/settings", admin.settings_page, admin=True),
    _post("/ui/admin/settings", admin.save_settings, admin=True),
]
