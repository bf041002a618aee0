"""The `artifactory` command: serve, db upgrade, repo, user, gc."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from artifactory import __version__
from artifactory.settings import Settings, load_settings


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        getattr(args, "config", None),
        data_dir=getattr(args, "data_dir", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        workers=getattr(args, "workers", None),
        server=getattr(args, "server", None),
        ssl_certfile=getattr(args, "ssl_certfile", None),
        ssl_keyfile=getattr(args, "ssl_keyfile", None),
    )


def prepare(settings: Settings, announce: bool = True) -> None:
    """Migrate the database and make sure the admin user exists (once, before any worker starts)."""
    from artifactory.db.migrate import exclusive

    settings.secure_data_dir()
    with exclusive(settings.resolved_database_url):
        _prepare_locked(settings, announce)


def _prepare_locked(settings: Settings, announce: bool) -> None:
    from artifactory.db.engine import Database
    from artifactory.db.migrate import upgrade_unlocked
    from artifactory.security.service import Security

    upgrade_unlocked(settings.resolved_database_url)
    db = Database(settings.resolved_database_url)
    try:
        password = settings.admin_password or secrets.token_urlsafe(18)
        if Security(db).bootstrap(password) and not settings.admin_password:
            path = settings.data_dir / "admin.password"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(password + "\n")
            os.chmod(path, 0o600)
            if announce:
                print(f"Created user admin; its password is in {path.resolve()}", file=sys.stderr, flush=True)
    finally:
        db.dispose()


KEEP_ALIVE_SECONDS = 75


def cmd_serve(args: argparse.Namespace) -> int:
    from artifactory.metrics import prepare_multiprocess

    settings = _settings(args)
    prepare(settings)
    prepare_multiprocess(settings.data_dir)
    settings.export()
    if settings.ssl_certfile and not settings.ssl_keyfile:
        print("--ssl-certfile needs --ssl-keyfile", file=sys.stderr)
        return 2
    print(
        f"artifactory {__version__} serving on {settings.host}:{settings.port} ({settings.server})",
        flush=True,
    )
    if settings.server == "granian":
        from granian import Granian
        from granian.constants import Interfaces

        Granian(
            target="artifactory.app:create_app",
            factory=True,
            address=settings.host,
            port=settings.port,
            interface=Interfaces.ASGI,
            workers=settings.workers,
            ssl_cert=Path(settings.ssl_certfile) if settings.ssl_certfile else None,
            ssl_key=Path(settings.ssl_keyfile) if settings.ssl_keyfile else None,
            log_level=settings.log_level,  # type: ignore[arg-type]
        ).serve()
        return 0
    import uvicorn

    uvicorn.run(
        "artifactory.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        ssl_certfile=settings.ssl_certfile or None,
        ssl_keyfile=settings.ssl_keyfile or None,
        log_level=settings.log_level,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        http="artifactory.http.protocol:HttpProtocol",  # a response's head and body in one write
        # Clients keep idle connections longer than uvicorn's 5 s default (pip's pool never expires
        # them): a request sent as the server closes one fails with "server disconnected". 75 s is
        # nginx's default.
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    settings = _settings(args)
    prepare(settings)
    print(f"database at head: {settings.resolved_database_url.split('@')[-1]}")
    return 0


def _offline_state(args: argparse.Namespace) -> Any:
    from artifactory.state import AppState

    settings = _settings(args)
    prepare(settings, announce=True)
    return AppState.build(settings)


def cmd_repo(args: argparse.Namespace) -> int:
    from artifactory.repository.config import ConfigError, public_view
    from artifactory.repository.registry import RepositoryExists, RepositoryInUse

    state = _offline_state(args)
    registry = state.engine.repos
    try:
        if args.repo_command == "list":
            for repo in registry.all():
                print(f"{repo.name}\t{repo.format}\t{repo.type}")
        elif args.repo_command == "create":
            body: dict[str, Any] = json.loads(args.json) if args.json else {}
            body.update({"name": args.name, "format": args.format, "type": args.type})
            if args.url:
                body["url"] = args.url
            if args.members:
                body["members"] = [m for m in args.members.split(",") if m]
            if args.write_policy:
                body["write_policy"] = args.write_policy
            print(json.dumps(public_view(registry.create(body)), indent=2))
        elif args.repo_command == "delete":
            if registry.delete(args.name) is None:
                print(f"no repository {args.name!r}", file=sys.stderr)
                return 1
    except (ConfigError, RepositoryExists, RepositoryInUse, json.JSONDecodeError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        state.db.dispose()
    return 0


def _read_password(args: argparse.Namespace) -> str:
    """The password from --password, $ARTIFACTORY_USER_PASSWORD, a prompt on a terminal, or one
    line of standard input (so it never has to appear in a command line)."""
    given = getattr(args, "password", None) or os.environ.get("ARTIFACTORY_USER_PASSWORD")
    if given:
        return str(given)
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass("New password: ")
        if first != getpass.getpass("Repeat it: "):
            raise ValueError("the passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_user(args: argparse.Namespace) -> int:
    try:
        password = _read_password(args) if args.user_command in ("create", "passwd") else ""
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.user_command in ("create", "passwd") and not password:
        print(
            "error: an empty password: type one, pipe one line, or set $ARTIFACTORY_USER_PASSWORD",
            file=sys.stderr,
        )
        return 2
    state = _offline_state(args)
    try:
        if args.user_command == "create":
            roles = [r for r in (args.roles or "").split(",") if r]
            result = state.security.create_user(args.name, password, roles)
            action = "user.created"
        elif args.user_command == "passwd":
            result = state.security.update_user(args.name, password=password, disabled=False)
            action = "user.updated"
        else:
            result = state.security.update_user(args.name, disabled=args.user_command == "disable")
            action = "user.updated"
        state.audit.record("cli", action, details={"username": args.name, "command": args.user_command})
        print(json.dumps(result))
    except KeyError:
        if args.user_command == "create":
            print(
                f"error: user {args.name!r} already exists; "
                f"`artifactory user passwd {args.name}` sets a new password",
                file=sys.stderr,
            )
        else:
            print(f"error: no user {args.name!r}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        state.db.dispose()
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from artifactory.blobstore.gc import collect
    from artifactory.progress import Progress, human

    state = _offline_state(args)
    progress = Progress("gc")
    try:
        # Formats first: what they delete (untagged manifests) frees blobs for the same run.
        progress.start("formats", 0, 0)
        formats = state.pm.hook.artifactory_gc(state=state, grace_seconds=args.grace, dry_run=args.dry_run)
        progress.start("blobs", 0, 0)
        report = collect(
            state.db,
            state.blobs,
            grace_seconds=args.grace,
            dry_run=args.dry_run,
            progress=lambda blobs, nbytes: progress.advance(blobs, nbytes),
        )
        progress.finish()
        summary = {**report.as_dict(), "formats": formats}
        if not args.dry_run:
            state.audit.record("cli", "gc.run", details={"blobs": report.blobs, "bytes": report.bytes})
    finally:
        state.db.dispose()
    if args.json:
        print(json.dumps(summary))
    else:
        verb = "would remove" if args.dry_run else "removed"
        print(
            f"gc {verb} {report.blobs} blobs ({human(report.bytes)}), {report.orphan_objects} orphan objects,"
            f" {report.temps} temporary objects"
        )
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="artifactory", description="A universal artifact repository.")
    top.add_argument("--version", action="version", version=__version__)
    sub = top.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--data-dir", type=Path, help="data directory (default ./artifactory-data)")
        p.add_argument("--config", help="TOML settings file")
        return p

    serve = common(sub.add_parser("serve", help="run the server"))
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.add_argument("--server", choices=["uvicorn", "granian"])
    serve.add_argument("--ssl-certfile")
    serve.add_argument("--ssl-keyfile")
    serve.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    common(db_sub.add_parser("upgrade", help="apply pending migrations")).set_defaults(func=cmd_db_upgrade)

    repo = sub.add_parser("repo", help="manage repositories")
    repo_sub = repo.add_subparsers(dest="repo_command", required=True)
    common(repo_sub.add_parser("list")).set_defaults(func=cmd_repo)
    create = common(repo_sub.add_parser("create"))
    create.add_argument("name")
    create.add_argument("--format", required=True)
    create.add_argument("--type", default="hosted", choices=["hosted", "proxy", "group"])
    create.add_argument("--url", help="upstream URL of a proxy")
    create.add_argument("--members", help="comma-separated members of a group")
    create.add_argument("--write-policy", choices=["allow", "allow_once", "deny"])
    create.add_argument("--json", help="further settings as a JSON object")
    create.set_defaults(func=cmd_repo)
    remove = common(repo_sub.add_parser("delete"))
    remove.add_argument("name")
    remove.set_defaults(func=cmd_repo)

    user = sub.add_parser("user", help="manage users")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    ucreate = common(user_sub.add_parser("create"))
    ucreate.add_argument("name")
    ucreate.add_argument("--password", help="prefer the prompt or standard input: argv is visible to others")
    ucreate.add_argument("--roles", default="")
    ucreate.set_defaults(func=cmd_user)
    passwd = common(
        user_sub.add_parser(
            "passwd",
            help="set a user's password (and enable the user): works on a stopped or a running server, "
            "which stops accepting the old password within config_cache_seconds",
        )
    )
    passwd.add_argument("name")
    passwd.set_defaults(func=cmd_user)
    for verb in ("disable", "enable"):
        toggle = common(
            user_sub.add_parser(verb, help=f"{verb} a user (a disabled user's credentials stop working)")
        )
        toggle.add_argument("name")
        toggle.set_defaults(func=cmd_user)

    gc = common(sub.add_parser("gc", help="remove unreferenced blobs"))
    gc.add_argument("--dry-run", action="store_true")
    gc.add_argument("--grace", type=int, default=24 * 3600, help="seconds an unreferenced blob is kept")
    gc.add_argument("--json", action="store_true", help="print a machine-readable summary")
    gc.set_defaults(func=cmd_gc)

    from artifactory.plugins import plugin_manager

    plugin_manager(_plugin_names()).hook.artifactory_register_commands(subparsers=sub)
    return top


def _plugin_names() -> list[str]:
    value = os.environ.get("ARTIFACTORY_PLUGINS", "")
    return [name.strip() for name in value.split(",") if name.strip()]


def cmd_plugin(args: argparse.Namespace) -> int:
    state = _offline_state(args)
    try:
        return int(args.run(args, state))
    finally:
        state.db.dispose()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "run", None) is not None:
        return cmd_plugin(args)
    return int(args.func(args))
