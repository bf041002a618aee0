"""The OpenAPI 3.1 document of the admin API, served at /api/v1/openapi.json.

Plain data, kept next to the routes it describes; tests/artifactory/api/test_openapi.py checks that
every route in routes.py is described here and nothing else is.
"""

from __future__ import annotations

from typing import Any

from artifactory import __version__

JSON = "application/json"
ANYONE: list[dict[str, list[str]]] = [{}, {"basic": []}, {"bearer": []}]
SIGNED_IN: list[dict[str, list[str]]] = [{"basic": []}, {"bearer": []}]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": schema}}}


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"$ref": f"#/components/responses/{ERROR_NAMES[s]}"} for s in statuses}


def _name_param(what: str) -> dict[str, Any]:
    return {"name": "name", "in": "path", "required": True, "description": what, "schema": {"type": "string"}}


ERROR_NAMES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    413: "TooLarge",
}
NO_CONTENT = {"204": {"description": "Done; no body."}}

# -- schemas --------------------------------------------------------------------------------------
_REPOSITORY_COMMON: dict[str, Any] = {
    "name": {
        "type": "string",
        "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$",
        "description": "Unique; cannot change. On PUT it may be omitted (the path names the repository).",
    },
    "format": {
        "type": "string",
        "description": "A registered format id (pypi, npm, maven, oci, raw, ...); cannot change.",
        "examples": ["pypi"],
    },
    "write_policy": {
        "enum": ["allow", "allow_once", "deny"],
        "description": "allow: replace freely; allow_once: no replacing; deny: read-only. "
        "Hosted repositories default to the format's choice (usually allow).",
    },
    "allow_inline": {
        "type": "boolean",
        "description": "Serve files inline rather than as attachments (raw).",
    },
    "max_upload_bytes": {"type": "integer", "description": "Overrides the server's limit when not 0."},
    "version_policy": {
        "enum": ["release", "snapshot", "mixed"],
        "description": "Maven only: which versions the repository accepts.",
    },
    "revision": {
        "type": "integer",
        "readOnly": True,
        "description": "Bumped on every change of content; ignored when sent back.",
    },
}
_FORMAT_KEYS_NOTE = (
    " A format may accept settings of its own (listed here where known); unknown settings are refused."
)

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    },
    "Status": {
        "type": "object",
        "required": ["status", "version", "formats", "database", "blobstore"],
        "properties": {
            "status": {"const": "ok"},
            "version": {"type": "string"},
            "formats": {"type": "array", "items": {"type": "string"}},
            "database": {"type": "string", "description": "SQLAlchemy dialect: sqlite or postgresql."},
            "blobstore": {"type": "string", "description": "Blob driver class name."},
        },
    },
    "WhoAmI": {
        "type": "object",
        "required": ["username", "roles", "anonymous"],
        "properties": {
            "username": {"type": "string"},
            "roles": {"type": "array", "items": {"type": "string"}},
            "anonymous": {"type": "boolean"},
        },
    },
    "RepositorySummary": {
        "type": "object",
        "required": ["name", "format", "type", "url"],
        "properties": {
            "name": {"type": "string"},
            "format": {"type": "string"},
            "type": {"enum": ["hosted", "proxy", "group"]},
            "url": {"type": "string", "format": "uri", "description": "Where clients point."},
        },
    },
    "HostedRepository": {
        "type": "object",
        "description": "Stores what is uploaded to it." + _FORMAT_KEYS_NOTE,
        "required": ["format", "type"],
        "properties": {**_REPOSITORY_COMMON, "type": {"const": "hosted"}},
    },
    "ProxyRepository": {
        "type": "object",
        "description": "Caches an upstream registry." + _FORMAT_KEYS_NOTE,
        "required": ["format", "type", "url"],
        "properties": {
            **_REPOSITORY_COMMON,
            "type": {"const": "proxy"},
            "url": {
                "type": "string",
                "format": "uri",
                "description": "The upstream as its own clients use it: a simple index ending in /simple/ "
                "(pypi), the registry URL (npm), the repository URL (maven, raw), https://host[:port] (oci).",
            },
            "metadata_ttl_seconds": {"type": "integer", "minimum": 0, "default": 3600},
            "negative_cache_seconds": {"type": "integer", "minimum": 0, "default": 300},
            "offline": {"type": "boolean", "default": False, "description": "Serve the cache only."},
            "timeout_seconds": {"type": "number", "default": 30.0},
            "block_after_failures": {"type": "integer", "minimum": 0, "default": 3},
            "block_seconds": {"type": "integer", "minimum": 0, "default": 60},
            "include": {
                "type": "array",
                "items": {"type": "string"},
                "default": [],
                "description": "Path patterns fetched from upstream (empty: all).",
            },
            "exclude": {
                "type": "array",
                "items": {"type": "string"},
                "default": [],
                "description": "Path patterns never fetched from upstream.",
            },
            "username": {"type": "string", "description": "Upstream user."},
            "password": {
                "type": "string",
                "description": 'Upstream password. GET shows "********"; sending that back, or omitting '
                "the field, keeps the stored password.",
            },
            "ca_bundle": {"type": "string", "description": "PEM certificates trusted for the upstream."},
            "status": {"allOf": [_ref("ProxyStatus")], "readOnly": True},
        },
    },
    "ProxyStatus": {
        "type": "object",
        "properties": {
            "online": {"type": "boolean"},
            "blocked": {"type": "boolean", "description": "Upstream skipped after repeated failures."},
            "blocked_until": {"type": ["string", "null"], "format": "date-time"},
            "failures": {"type": "integer"},
            "last_error": {"type": "string"},
        },
    },
    "GroupRepository": {
        "type": "object",
        "description": "Serves its members as one repository, first member first." + _FORMAT_KEYS_NOTE,
        "required": ["format", "type", "members"],
        "properties": {
            **_REPOSITORY_COMMON,
            "type": {"const": "group"},
            "members": {
                "type": "array",
                "items": {"type": "string"},
                "uniqueItems": True,
                "description": "Repository names of the same format; not the group itself.",
            },
            "allow_proxy_shadowing": {
                "type": "boolean",
                "default": False,
                "description": "Let a proxy member serve a name that a hosted member also has.",
            },
            "write_member": {
                "type": "string",
                "description": "The hosted member that uploads to the group go to.",
            },
        },
    },
    "Repository": {
        "oneOf": [_ref("HostedRepository"), _ref("ProxyRepository"), _ref("GroupRepository")],
        "discriminator": {
            "propertyName": "type",
            "mapping": {
                "hosted": "#/components/schemas/HostedRepository",
                "proxy": "#/components/schemas/ProxyRepository",
                "group": "#/components/schemas/GroupRepository",
            },
        },
    },
    "NewRepository": {"allOf": [_ref("Repository"), {"required": ["name"]}]},
    "Invalidate": {
        "type": "object",
        "properties": {
            "prefix": {"type": "string", "description": "Only paths under this prefix (default: all)."}
        },
    },
    "Invalidated": {
        "type": "object",
        "required": ["invalidated"],
        "properties": {"invalidated": {"type": "string", "description": 'The prefix, or "*" for all.'}},
    },
    "NewUser": {
        "type": "object",
        "required": ["username", "password"],
        "properties": {
            "username": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$"},
            "password": {"type": "string", "minLength": 1},
            "roles": {"type": "array", "items": {"type": "string"}, "default": []},
        },
    },
    "User": {
        "type": "object",
        "required": ["username", "roles"],
        "properties": {
            "username": {"type": "string"},
            "roles": {"type": "array", "items": {"type": "string"}},
            "disabled": {"type": "boolean"},
        },
    },
    "UserUpdate": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "password": {"type": "string", "minLength": 1, "maxLength": 1024},
            "roles": {"type": "array", "items": {"type": "string"}},
            "disabled": {
                "type": "boolean",
                "description": "A disabled user's password and tokens stop working.",
            },
            "current_password": {
                "type": "string",
                "description": "Required when a user who is not an admin changes their own password.",
            },
        },
    },
    "TokenScope": {
        "type": "object",
        "additionalProperties": False,
        "description": "Limits a token below its owner's roles; a scoped token never administers.",
        "properties": {
            "repositories": {"type": "string", "description": "Glob over repository names.", "default": "*"},
            "actions": {"type": "array", "minItems": 1, "items": {"enum": ["read", "write", "delete"]}},
        },
    },
    "Privilege": {
        "type": "object",
        "required": ["repositories", "actions"],
        "properties": {
            "repositories": {"type": "string", "description": "Glob over repository names."},
            "actions": {
                "type": "array",
                "minItems": 1,
                "items": {"enum": ["read", "write", "delete"]},
            },
        },
    },
    "NewRole": {
        "type": "object",
        "required": ["name", "privileges"],
        "properties": {
            "name": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$"},
            "privileges": {"type": "array", "items": _ref("Privilege")},
        },
    },
    "RoleUpdate": {
        "type": "object",
        "required": ["privileges"],
        "properties": {"privileges": {"type": "array", "items": _ref("Privilege")}},
    },
    "Role": {
        "type": "object",
        "required": ["name", "privileges"],
        "properties": {
            "name": {"type": "string"},
            "privileges": {"type": "array", "items": _ref("Privilege")},
            "builtin": {"type": "boolean", "description": "Present in listings; admin and anonymous."},
        },
    },
    "NewToken": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "default": "", "maxLength": 200},
            "expires_in_seconds": {
                "type": "integer",
                "minimum": 1,
                "maximum": 316224000,
                "description": "A token made with an expiring token expires no later than it.",
            },
            "scope": _ref("TokenScope"),
        },
    },
    "CreatedToken": {
        "type": "object",
        "required": ["token", "id", "name", "expires_at"],
        "properties": {
            "token": {
                "type": "string",
                "description": "Shown once: a Bearer token, or the password of HTTP Basic with the "
                "owner's username.",
            },
            "id": {"type": "string"},
            "name": {"type": "string"},
            "expires_at": {"type": ["string", "null"], "format": "date-time"},
            "scope": {"anyOf": [_ref("TokenScope"), {"type": "null"}]},
        },
    },
    "Token": {
        "type": "object",
        "required": ["id", "name", "created_at", "expires_at"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "expires_at": {"type": ["string", "null"], "format": "date-time"},
            "scope": {"anyOf": [_ref("TokenScope"), {"type": "null"}]},
        },
    },
    "Settings": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "anonymous_read": {
                "type": "boolean",
                "description": "Whether anonymous clients may read (default true).",
            }
        },
    },
    "AuditPage": {
        "type": "object",
        "required": ["items", "next"],
        "properties": {
            "items": {"type": "array", "items": _ref("AuditEvent")},
            "next": {"type": ["string", "null"], "description": "Cursor of the next page; null on the last."},
        },
    },
    "AuditEvent": {
        "type": "object",
        "required": ["id", "at", "actor", "action", "repository", "path", "details"],
        "properties": {
            "id": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
            "actor": {"type": "string"},
            "action": {"type": "string"},
            "repository": {"type": "string"},
            "path": {"type": "string"},
            "details": {"type": "object"},
        },
    },
    "CleanupPolicy": {
        "type": "object",
        "additionalProperties": False,
        "description": "A version goes when it meets every rule the policy sets; protected versions "
        "(dist-tags, tags, latest, maven release) and allow-listed names never go. docs/cleanup.md.",
        "properties": {
            "keep_newest": {
                "type": "integer",
                "minimum": 0,
                "description": "Only versions beyond the newest N of a component, in the format\x27s order.",
            },
            "not_downloaded_days": {
                "type": "number",
                "minimum": 0,
                "description": "Only versions not downloaded for this many days (never: since stored).",
            },
            "prerelease_older_than_days": {
                "type": "number",
                "minimum": 0,
                "description": "Only prereleases and snapshots stored more than this many days ago.",
            },
            "allow": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Names or globs never touched (name, namespace/name or namespace:name).",
            },
            "allow_empty": {
                "type": "boolean",
                "default": False,
                "description": "Let the policy remove every version of a component (else the newest stays).",
            },
            "description": {"type": "string"},
            "name": {"type": "string", "description": "Optional; must equal the name in the path."},
        },
    },
    "StoredCleanupPolicy": {
        "allOf": [
            _ref("CleanupPolicy"),
            {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "repositories": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "Repositories whose cleanup_policies name it (in listings).",
                    }
                },
            },
        ]
    },
    "CleanupReport": {
        "type": "object",
        "required": ["dry_run", "repositories", "versions", "assets", "bytes", "removals", "kept", "errors"],
        "properties": {
            "dry_run": {"type": "boolean"},
            "repositories": {"type": "array", "items": {"type": "string"}},
            "versions": {"type": "integer"},
            "assets": {"type": "integer"},
            "bytes": {"type": "integer"},
            "seconds": {"type": "number"},
            "removals": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["repository", "namespace", "name", "version", "assets", "bytes"],
                    "properties": {
                        "repository": {"type": "string"},
                        "namespace": {"type": "string"},
                        "name": {"type": "string"},
                        "version": {"type": "string"},
                        "assets": {"type": "array", "items": {"type": "string"}},
                        "bytes": {"type": "integer"},
                        "policies": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
            "kept": {
                "type": "array",
                "description": "Versions kept because the policies would remove every version.",
                "items": {"type": "object"},
            },
            "errors": {"type": "array", "items": {"type": "string"}},
        },
    },
    "SearchResults": {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {"type": "array", "items": _ref("Component")},
            "next": {"type": ["string", "null"], "description": "Cursor of the next page; null on the last."},
        },
    },
    "Component": {
        "type": "object",
        "required": ["repository", "format", "namespace", "name", "version", "assets"],
        "properties": {
            "repository": {"type": "string"},
            "format": {"type": "string"},
            "namespace": {"type": "string"},
            "name": {"type": "string"},
            "version": {"type": "string"},
            "assets": {"type": "array", "items": _ref("Asset")},
        },
    },
    "Asset": {
        "type": "object",
        "required": ["path", "sha256", "size", "content_type"],
        "properties": {
            "path": {"type": "string"},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "size": {"type": "integer", "minimum": 0},
            "content_type": {"type": "string"},
        },
    },
}

RESPONSES: dict[str, Any] = {
    "BadRequest": {
        "description": "The request was malformed or refused.",
        "content": {JSON: {"schema": _ref("Error")}},
    },
    "TooLarge": {
        "description": "The JSON body is larger than the admin API's limit (1 MiB).",
        "content": {JSON: {"schema": _ref("Error")}},
    },
    "Unauthorized": {
        "description": "Credentials are missing where a user is needed, or wrong.",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
        "content": {JSON: {"schema": _ref("Error")}},
    },
    "Forbidden": {
        "description": "The user lacks the admin role.",
        "content": {JSON: {"schema": _ref("Error")}},
    },
    "NotFound": {"description": "No such object.", "content": {JSON: {"schema": _ref("Error")}}},
    "Conflict": {
        "description": "The name is taken, or the object is still in use.",
        "content": {JSON: {"schema": _ref("Error")}},
    },
}

# -- paths ----------------------------------------------------------------------------------------
PATHS: dict[str, Any] = {
    "/api/v1/status": {
        "get": {
            "operationId": "getStatus",
            "summary": "Readiness: answers once the server can serve.",
            "tags": ["server"],
            "security": [],
            "responses": {"200": _ok("Ready.", _ref("Status"))},
        }
    },
    "/api/v1/openapi.json": {
        "get": {
            "operationId": "getOpenApi",
            "summary": "This document.",
            "tags": ["server"],
            "security": [],
            "responses": {"200": _ok("The OpenAPI document.", {"type": "object"})},
        }
    },
    "/api/v1/whoami": {
        "get": {
            "operationId": "whoAmI",
            "summary": "Who the request's credentials prove (anonymous without any).",
            "tags": ["security"],
            "security": ANYONE,
            "responses": {"200": _ok("The principal.", _ref("WhoAmI")), **_errors(401)},
        }
    },
    "/api/v1/repositories": {
        "get": {
            "operationId": "listRepositories",
            "summary": "Repositories the caller may read.",
            "tags": ["repositories"],
            "security": ANYONE,
            "responses": {
                "200": _ok("The repositories.", {"type": "array", "items": _ref("RepositorySummary")}),
                **_errors(401),
            },
        },
        "post": {
            "operationId": "createRepository",
            "summary": "Create a hosted, proxy or group repository (admin).",
            "tags": ["repositories"],
            "requestBody": _body(_ref("NewRepository")),
            "responses": {
                "201": _ok("The stored repository.", _ref("Repository")),
                **_errors(400, 401, 403, 409),
            },
        },
    },
    "/api/v1/repositories/{name}": {
        "parameters": [_name_param("Repository name.")],
        "get": {
            "operationId": "getRepository",
            "summary": "One repository's definition, secrets masked; a proxy also reports its status.",
            "tags": ["repositories"],
            "security": ANYONE,
            "responses": {"200": _ok("The repository.", _ref("Repository")), **_errors(401, 404)},
        },
        "put": {
            "operationId": "updateRepository",
            "summary": "Replace a repository's settings (admin); name, format and type cannot change.",
            "description": "Takes the whole object, such as GET returned it with some fields changed; "
            "read-only fields are ignored.",
            "tags": ["repositories"],
            "requestBody": _body(_ref("Repository")),
            "responses": {
                "200": _ok("The stored repository.", _ref("Repository")),
                **_errors(400, 401, 403, 404),
            },
        },
        "delete": {
            "operationId": "deleteRepository",
            "summary": "Delete a repository and its assets (admin).",
            "tags": ["repositories"],
            "responses": {
                **NO_CONTENT,
                **_errors(401, 403, 404),
                "409": {
                    "description": "A group still lists this repository as a member.",
                    "content": {JSON: {"schema": _ref("Error")}},
                },
            },
        },
    },
    "/api/v1/repositories/{name}/invalidate": {
        "parameters": [_name_param("Name of a proxy repository.")],
        "post": {
            "operationId": "invalidateProxyCache",
            "summary": "Make a proxy revalidate its cached files and forget remembered misses (admin).",
            "tags": ["repositories"],
            "requestBody": _body(_ref("Invalidate"), required=False),
            "responses": {
                "200": _ok("What was invalidated.", _ref("Invalidated")),
                **_errors(400, 401, 403, 404),
            },
        },
    },
    "/api/v1/users": {
        "get": {
            "operationId": "listUsers",
            "summary": "Every user (admin).",
            "tags": ["security"],
            "responses": {
                "200": _ok("The users.", {"type": "array", "items": _ref("User")}),
                **_errors(401, 403),
            },
        },
        "post": {
            "operationId": "createUser",
            "summary": "Create a user with roles (admin).",
            "tags": ["security"],
            "requestBody": _body(_ref("NewUser")),
            "responses": {"201": _ok("The user.", _ref("User")), **_errors(400, 401, 403, 409)},
        },
    },
    "/api/v1/users/{name}": {
        "parameters": [_name_param("Username.")],
        "put": {
            "operationId": "updateUser",
            "summary": "Change a user's password, roles or disabled flag (admin); a user may change "
            "only their own password, sending current_password.",
            "tags": ["security"],
            "security": SIGNED_IN,
            "requestBody": _body(_ref("UserUpdate")),
            "responses": {"200": _ok("The user.", _ref("User")), **_errors(400, 401, 403, 404, 413)},
        },
        "delete": {
            "operationId": "deleteUser",
            "summary": "Delete a user (admin); the admin user cannot be deleted (400).",
            "tags": ["security"],
            "responses": {**NO_CONTENT, **_errors(400, 401, 403, 404)},
        },
    },
    "/api/v1/roles": {
        "get": {
            "operationId": "listRoles",
            "summary": "Every role, built-in ones included (admin).",
            "tags": ["security"],
            "responses": {
                "200": _ok("The roles.", {"type": "array", "items": _ref("Role")}),
                **_errors(401, 403),
            },
        },
        "post": {
            "operationId": "createRole",
            "summary": "Create a role (admin).",
            "tags": ["security"],
            "requestBody": _body(_ref("NewRole")),
            "responses": {"201": _ok("The role.", _ref("Role")), **_errors(400, 401, 403, 409)},
        },
    },
    "/api/v1/roles/{name}": {
        "parameters": [_name_param("Role name.")],
        "put": {
            "operationId": "saveRole",
            "summary": "Replace a role's privileges, creating the role if missing (admin).",
            "description": "The built-in admin role cannot be changed (400).",
            "tags": ["security"],
            "requestBody": _body(_ref("RoleUpdate")),
            "responses": {"200": _ok("The role.", _ref("Role")), **_errors(400, 401, 403)},
        },
        "delete": {
            "operationId": "deleteRole",
            "summary": "Delete a role (admin); built-in roles cannot be deleted (400).",
            "tags": ["security"],
            "responses": {**NO_CONTENT, **_errors(400, 401, 403, 404)},
        },
    },
    "/api/v1/tokens": {
        "get": {
            "operationId": "listTokens",
            "summary": "The caller's API tokens (without their secrets); an admin may name ?user=.",
            "tags": ["security"],
            "security": SIGNED_IN,
            "parameters": [
                {"name": "user", "in": "query", "required": False, "schema": {"type": "string"}},
            ],
            "responses": {
                "200": _ok("The tokens.", {"type": "array", "items": _ref("Token")}),
                **_errors(401, 403),
            },
        },
        "post": {
            "operationId": "createToken",
            "summary": "Create an API token for the caller; the body may be empty or {}.",
            "tags": ["security"],
            "security": SIGNED_IN,
            "requestBody": _body(_ref("NewToken"), required=False),
            "responses": {"201": _ok("The new token.", _ref("CreatedToken")), **_errors(400, 401, 413)},
        },
    },
    "/api/v1/tokens/{token_id}": {
        "parameters": [
            {"name": "token_id", "in": "path", "required": True, "schema": {"type": "string"}},
        ],
        "delete": {
            "operationId": "revokeToken",
            "summary": "Revoke one of the caller's tokens (an admin may revoke anyone's).",
            "tags": ["security"],
            "security": SIGNED_IN,
            "responses": {**NO_CONTENT, **_errors(401, 403, 404)},
        },
    },
    "/api/v1/settings": {
        "get": {
            "operationId": "getSettings",
            "summary": "Server-wide settings changeable at run time (admin).",
            "tags": ["server"],
            "responses": {"200": _ok("The settings.", _ref("Settings")), **_errors(401, 403)},
        },
        "put": {
            "operationId": "updateSettings",
            "summary": "Change the settings given; unknown keys are refused (admin).",
            "tags": ["server"],
            "requestBody": _body(_ref("Settings")),
            "responses": {"200": _ok("The settings now.", _ref("Settings")), **_errors(400, 401, 403)},
        },
    },
    "/api/v1/search": {
        "get": {
            "operationId": "search",
            "summary": "Components (with their assets) in repositories the caller may read.",
            "tags": ["search"],
            "security": ANYONE,
            "parameters": [
                {
                    "name": "q",
                    "in": "query",
                    "description": "Substring of the component name or namespace, ignoring case; with * a "
                    "glob (req* is a prefix search).",
                    "schema": {"type": "string"},
                },
                {"name": "format", "in": "query", "schema": {"type": "string"}},
                {
                    "name": "repository",
                    "in": "query",
                    "description": "A repository; a group means its members the caller may read.",
                    "schema": {"type": "string"},
                },
                {"name": "version", "in": "query", "schema": {"type": "string"}},
                {
                    "name": "sha256",
                    "in": "query",
                    "description": "Components with an asset of this digest.",
                    "schema": {"type": "string"},
                },
                {"name": "sha1", "in": "query", "schema": {"type": "string"}},
                {"name": "md5", "in": "query", "schema": {"type": "string"}},
                {
                    "name": "cursor",
                    "in": "query",
                    "description": "The `next` of the previous page.",
                    "schema": {"type": "string"},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "description": "Maximum components, clamped to 1..1000.",
                    "schema": {"type": "integer", "default": 200},
                },
            ],
            "responses": {"200": _ok("Matching components.", _ref("SearchResults")), **_errors(400, 401)},
        }
    },
    "/api/v1/audit": {
        "get": {
            "operationId": "listAuditEvents",
            "summary": "Audit events, newest first (admin): writes, deletes, repository, user, role, "
            "token and settings changes, failed sign-ins and refused actions.",
            "tags": ["server"],
            "parameters": [
                {"name": "actor", "in": "query", "schema": {"type": "string"}},
                {
                    "name": "action",
                    "in": "query",
                    "description": "An action such as user.created, or a prefix ending in * (user.*).",
                    "schema": {"type": "string"},
                },
                {"name": "repository", "in": "query", "schema": {"type": "string"}},
                {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                {"name": "until", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                {
                    "name": "cursor",
                    "in": "query",
                    "description": "The `next` of the previous page.",
                    "schema": {"type": "string"},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                },
            ],
            "responses": {"200": _ok("A page of events.", _ref("AuditPage")), **_errors(400, 401, 403)},
        }
    },
    "/api/v1/cleanup-policies": {
        "get": {
            "operationId": "listCleanupPolicies",
            "summary": "Every cleanup policy, with the repositories it is attached to (admin).",
            "tags": ["server"],
            "responses": {
                "200": _ok("The policies.", {"type": "array", "items": _ref("StoredCleanupPolicy")}),
                **_errors(401, 403),
            },
        }
    },
    "/api/v1/cleanup-policies/{name}": {
        "parameters": [_name_param("Policy name.")],
        "put": {
            "operationId": "saveCleanupPolicy",
            "summary": "Create or replace a cleanup policy (admin); attach it with a repository\x27s "
            "cleanup_policies setting.",
            "tags": ["server"],
            "requestBody": _body(_ref("CleanupPolicy")),
            "responses": {
                "200": _ok("The policy, replaced.", _ref("StoredCleanupPolicy")),
                "201": _ok("The policy, created.", _ref("StoredCleanupPolicy")),
                **_errors(400, 401, 403, 413),
            },
        },
        "delete": {
            "operationId": "deleteCleanupPolicy",
            "summary": "Delete a cleanup policy (admin); 409 while a repository names it.",
            "tags": ["server"],
            "responses": {**NO_CONTENT, **_errors(401, 403, 404, 409)},
        },
    },
    "/api/v1/cleanup-policies/{name}/preview": {
        "parameters": [_name_param("Policy name.")],
        "post": {
            "operationId": "previewCleanupPolicy",
            "summary": "A dry run of one policy (admin): exactly what it would remove, with bytes.",
            "tags": ["server"],
            "parameters": [
                {
                    "name": "repository",
                    "in": "query",
                    "required": False,
                    "description": "Preview on this repository (default: those the policy is attached to).",
                    "schema": {"type": "string"},
                }
            ],
            "responses": {"200": _ok("What would go.", _ref("CleanupReport")), **_errors(400, 401, 403, 404)},
        },
    },
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "artifactory admin API",
        "version": __version__,
        "description": "Repositories, users, roles, tokens, settings and search. Package clients use "
        "the format endpoints under /repository/ and /v2/, which are not described here.",
    },
    "servers": [{"url": "/"}],
    # Admin calls need a user with the admin role unless an operation says otherwise.
    "security": SIGNED_IN,
    "tags": [
        {"name": "server"},
        {"name": "repositories"},
        {"name": "security"},
        {"name": "search"},
    ],
    "paths": PATHS,
    "components": {
        "securitySchemes": {
            "basic": {
                "type": "http",
                "scheme": "basic",
                "description": "Username and password, or username and an API token as the password.",
            },
            "bearer": {"type": "http", "scheme": "bearer", "description": "An API token."},
        },
        "schemas": SCHEMAS,
        "responses": RESPONSES,
    },
}
