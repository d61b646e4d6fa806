"""The REST API under /api/v1. Every call is one command of the one command table run
on the node (so `fulcrum ctl`, the web UI and this API cannot disagree), and the OpenAPI
document is generated from that table and from the config model's JSON schema: nothing
here validates a configuration or an argument itself."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from fulcrum import __version__
from fulcrum.admin.node_client import NodeError, NodeUnreachable
from fulcrum.admin.server import Caller, caller_of, problem, state_of
from fulcrum.control import commands
from fulcrum.control.commands import COMMANDS

BASE = "/api/v1"


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{BASE}/status", get_status)
    app.router.add_get(f"{BASE}/config", get_config)
    app.router.add_put(f"{BASE}/config", put_config)
    app.router.add_get(f"{BASE}/config/versions", get_versions)
    app.router.add_get(f"{BASE}/config/versions/{{version:\\d+}}", get_version)
    app.router.add_post(f"{BASE}/config/rollback/{{version:\\d+}}", post_rollback)
    app.router.add_get(f"{BASE}/commands", get_commands)
    app.router.add_post(f"{BASE}/commands/{{name}}", post_command)
    app.router.add_get(f"{BASE}/openapi.json", get_openapi)
    app.router.add_get("/metrics", get_metrics)


async def run(request: web.Request, command: str, args: dict[str, Any] | None = None) -> web.Response:
    """Run `command` on the node; errors as JSON with the status the cause deserves."""
    state = state_of(request)
    caller = caller_of(request)
    changes = not COMMANDS[command].reads_only
    try:
        result = await state.node.run(command, args, by=caller.by if changes else None)
    except NodeError as err:
        if changes:
            state.reloads["rejected"] = state.reloads.get("rejected", 0) + 1
            log_refusal(caller, command, str(err))
        if err.problems:
            return problem(422, "invalid configuration",
                           problems=[{"path": path, "reason": reason} for path, reason in err.problems])
        return problem(400, str(err))
    except NodeUnreachable as err:
        return problem(503, str(err))
    if changes:
        state.reloads["applied"] = state.reloads.get("applied", 0) + 1
        state.log_change(caller, f"{command} {_shown(args)}")
    return web.json_response({"result": result})


def log_refusal(caller: Caller, command: str, reason: str) -> None:
    from fulcrum.admin.server import log

    log.info("admin: %s refused (%s), asked by %s", command, reason.replace("\n", "; "), caller.by)


def _shown(args: dict[str, Any] | None) -> str:
    return " ".join(f"{k}={'(a configuration)' if k == 'config' else v}" for k, v in (args or {}).items())


async def _json(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError as err:
        raise web.HTTPBadRequest(text=f'{{"error": "body is not JSON: {err}"}}',
                                 content_type="application/json") from err


async def get_status(request: web.Request) -> web.Response:
    try:
        return web.json_response(await state_of(request).node.status())
    except NodeUnreachable as err:
        return problem(503, str(err))


async def get_config(request: web.Request) -> web.Response:
    return await run(request, "config.show")


async def put_config(request: web.Request) -> web.Response:
    body = await _json(request)
    if not isinstance(body, dict):
        return problem(422, "invalid configuration", problems=[{"path": "(top level)", "reason": "must be an object"}])
    if "admin" not in body:
        # the admin section is this node's own; a document without it keeps it
        running = await state_of(request).node.run("config.show")
        body["admin"] = running.get("admin")
    return await run(request, "config.apply", {"config": body, "why": f"PUT by {caller_of(request).by}"})


async def get_versions(request: web.Request) -> web.Response:
    return await run(request, "config.versions")


async def get_version(request: web.Request) -> web.Response:
    return await run(request, "config.version", {"version": int(request.match_info["version"])})


async def post_rollback(request: web.Request) -> web.Response:
    return await run(request, "config.rollback", {"version": int(request.match_info["version"])})


async def get_commands(request: web.Request) -> web.Response:
    return web.json_response(commands.describe())


async def post_command(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in COMMANDS:
        return problem(404, f"unknown command {name!r}")
    body = await _json(request) if request.can_read_body else {}
    given = body.get("args", {}) if isinstance(body, dict) else None
    if isinstance(given, list):  # positional, as `fulcrum ctl NAME a b`
        names = [arg.name for arg in COMMANDS[name].args]
        if len(given) > len(names):
            return problem(400, f"{name}: too many arguments (takes {', '.join(names) or 'none'})")
        given = dict(zip(names, given, strict=False))
    if not isinstance(given, dict):
        return problem(400, 'expected {"args": [...]} or {"args": {"name": value}}')
    return await run(request, name, given)


async def get_metrics(request: web.Request) -> web.Response:
    from prometheus_client import CONTENT_TYPE_LATEST

    from fulcrum.admin.metrics import render

    state = state_of(request)
    try:
        status = await state.node.status()
    except NodeUnreachable as err:
        return problem(503, str(err))
    body = render(status, state.reloads, state.node_pid)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi())


# -- the OpenAPI document --------------------------------------------------------------------

_ARG_SCHEMAS: dict[Any, dict[str, Any]] = {
    commands.count: {"type": "integer", "minimum": 0},
    commands.seconds: {"oneOf": [{"type": "number", "minimum": 0}, {"type": "string", "example": "30s"}]},
    commands.flag: {"oneOf": [{"type": "boolean"}, {"type": "string", "enum": ["on", "off"]}]},
    commands.text: {"type": "string"},
    commands.scheduler_name: {"type": "string"},
}


def _arg_schema(arg: commands.Arg) -> dict[str, Any]:
    if arg.name == "config":
        return {"$ref": "#/components/schemas/Config", "description": arg.help}
    return {**_ARG_SCHEMAS.get(arg.parse, {}), "description": arg.help}


def openapi() -> dict[str, Any]:
    from fulcrum.config.model import Config

    schema = Config.model_json_schema(ref_template="#/components/schemas/{model}", mode="validation")
    components = schema.pop("$defs", {})
    components["Config"] = schema
    components["Error"] = {"type": "object", "properties": {
        "error": {"type": "string"},
        "problems": {"type": "array", "items": {"type": "object", "properties": {
            "path": {"type": "string", "example": "pools.web.servers[0].port"},
            "reason": {"type": "string"}}}}}}
    errors = {str(code): {"description": why, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}
        for code, why in ((400, "the command refused its arguments"), (401, "no or wrong credentials"),
                          (403, "no CSRF token (session cookie requests)"),
                          (422, "the configuration is invalid: every problem with its key path"),
                          (429, "too many failed logins from this address"))}
    ok = {"200": {"description": "done", "content": {"application/json": {"schema": {"type": "object"}}}}}
    paths: dict[str, Any] = {
        f"{BASE}/status": {"get": {"summary": "Node, services, pools, servers and VRRP routers with live state",
                                   "responses": {**ok, **errors}}},
        f"{BASE}/config": {
            "get": {"summary": "The running configuration", "responses": {"200": {
                "description": "the configuration", "content": {"application/json": {
                    "schema": {"type": "object", "properties": {
                        "result": {"$ref": "#/components/schemas/Config"}}}}}}, **errors}},
            "put": {"summary": "Apply a whole new configuration: validated by the model, applied hitlessly, "
                               "written to the file, synced to the peers, kept as a version. Without an "
                               "`admin` key the running admin section is kept.",
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Config"}}}},
                    "responses": {**ok, **errors}}},
        f"{BASE}/config/versions": {"get": {"summary": "Kept versions, oldest first", "responses": {**ok, **errors}}},
        f"{BASE}/config/versions/{{version}}": {"get": {
            "summary": "One kept version as this node would run it", "parameters": [_version_param()],
            "responses": {**ok, **errors}}},
        f"{BASE}/config/rollback/{{version}}": {"post": {
            "summary": "Go back to a kept version (a new change, synced and versioned)",
            "parameters": [_version_param()], "responses": {**ok, **errors}}},
        f"{BASE}/commands": {"get": {"summary": "The command table", "responses": {**ok, **errors}}},
    }
    for command in sorted(COMMANDS.values(), key=lambda c: c.name):
        properties = {arg.name: _arg_schema(arg) for arg in command.args}
        required = [arg.name for arg in command.args if arg.required]
        args_schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
        if required:
            args_schema["required"] = required
        paths[f"{BASE}/commands/{command.name}"] = {"post": {
            "summary": command.help, "operationId": command.name.replace(".", "_"),
            "requestBody": {"required": bool(required), "content": {"application/json": {"schema": {
                "type": "object", "properties": {"args": {"oneOf": [
                    args_schema,
                    {"type": "array", "description": "positional: " + ", ".join(properties) or "none"}]}}}}}},
            "responses": {**ok, **errors}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "fulcrum admin API", "version": __version__,
                 "description": "Runs the commands of fulcrum's one command table; configurations are "
                                "validated by its one config model."},
        "components": {"schemas": components, "securitySchemes": {
            "basic": {"type": "http", "scheme": "basic"}, "bearer": {"type": "http", "scheme": "bearer"},
            "session": {"type": "apiKey", "in": "cookie", "name": "fulcrum_session"}}},
        "security": [{"basic": []}, {"bearer": []}, {"session": []}],
        "paths": paths,
    }


def _version_param() -> dict[str, Any]:
    return {"name": "version", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
