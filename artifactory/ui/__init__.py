"""The web UI: server-rendered pages under /ui/ (browse, search, set-me-up, sign-in, admin)."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
