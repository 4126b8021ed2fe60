"""The ASGI app behind `gitrun ui`: Starlette, served by uvicorn.

    running(repo_path=None, port=0, host="127.0.0.1") -> ContextManager[str]
        with running(repo_dir) as base_url:      # "http://127.0.0.1:43817", no trailing /
            ...                                   # uvicorn serves in a background thread
        Starts the app on a free port (port=0) and stops it when the block ends; for tests
        and scripts.  The port is bound before the block starts, so base_url answers at once.

    create_app(repo_path=None, allowed_hosts=None) -> starlette.applications.Starlette
    serve(repo_path=None, host="127.0.0.1", port=5000, quiet=False) -> None   (blocks; Ctrl-C)
    bind(host, port) -> socket.socket      (PortInUseError when the port is taken)

What the app serves:
  - MLflow's REST API, read-only (rest.py), under /api/2.0/mlflow/ and /ajax-api/2.0/mlflow/,
    the artifact proxy under /api/2.0/mlflow-artifacts/, and /get-artifact;
  - the page's own JSON endpoints: views.routes (paths under /api/gitrun/), mounted as-is;
  - /static/ -> gitrun/ui/static/, and static/index.html for /, /runs/<ref> and /compare.

App state, for views.py: `request.app.state.repo` (gitrun._git.Repo), `.repo_path` (the
work tree, or the git directory of a bare repository) and `.lock` (a threading.Lock: hold
it around repository reads; rest.call(request, fn, *args) runs fn in a worker thread
holding it).

Read-only: no endpoint writes to the repository.  A write request (POST/PUT/PATCH/DELETE)
to any MLflow path that is not one of the read endpoints answers 403 with MLflow's error
shape, error_code PERMISSION_DENIED and a message starting "gitrun ui is read-only".
Unknown /api/ paths answer MLflow's JSON 404 (ENDPOINT_NOT_FOUND).  The search index
(.git/gitrun/index.sqlite) is a cache and is kept up to date as any gitrun command does.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from ..errors import GitrunError

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
# Paths that belong to an API: an unknown one answers JSON, never the page.
API_PREFIXES = ("/api/", "/ajax-api/")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


class PortInUseError(GitrunError):
    """The port `gitrun ui` was asked to listen on is taken."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost'."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on host:port (port 0: a free port)."""
    try:
        infos = socket.getaddrinfo(
            host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as e:
        raise GitrunError(
            f"Cannot listen on host '{host}' ({e.strerror}); give an address such as "
            "127.0.0.1 with --host."
        ) from None
    family, kind, proto, _name, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"Port {port} on {host} is already in use (another `gitrun ui` or server?); "
                "pick another one with --port."
            ) from None
        if e.errno in (errno.EACCES, errno.EPERM):
            raise GitrunError(
                f"Not allowed to listen on port {port} of {host}; ports below 1024 need "
                "special rights: pick another one with --port (e.g. 5000)."
            ) from None
        raise GitrunError(
            f"Cannot listen on {host}:{port} ({e.strerror or e}); check --host and --port."
        ) from None
    sock.set_inheritable(False)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    if host in ("0.0.0.0", "[::]"):
        host = "127.0.0.1" if host == "0.0.0.0" else "[::1]"
    return f"http://{host}:{port}"


class HostCheck:
    """ASGI middleware: answer only requests whose Host header names an allowed host
    (port aside; "*" allows any).  Anything else gets 400 in MLflow's error shape."""

    def __init__(self, app: Any, allowed: list[str]) -> None:
        self.app = app
        self.any = "*" in allowed
        self.allowed = {h.lower() for h in allowed}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not self.any and scope["type"] in ("http", "websocket"):
            from starlette.datastructures import Headers

            host = Headers(scope=scope).get("host", "").strip().lower()
            name = host[: host.find("]") + 1] if host.startswith("[") else host.rsplit(":", 1)[0]
            if name not in self.allowed:
                from . import rest

                response = rest.error_response(
                    "BAD_REQUEST",
                    f"gitrun ui answers requests addressed to this machine's loopback "
                    f"(127.0.0.1 or localhost), not to '{host[:100]}'; open the URL it printed.",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(repo_path: Any = None, allowed_hosts: list[str] | None = None) -> Any:
    """The Starlette app for the repository at (or above) repo_path (default: cwd; a
    gitrun._git.Repo is taken as it is).

    `allowed_hosts`: the Host headers answered (default: loopback names only, so a web
    page elsewhere cannot read the runs by pointing its own domain at 127.0.0.1, a DNS
    rebinding attack); ["*"] answers any."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import FileResponse, PlainTextResponse, Response
    from starlette.routing import BaseRoute, Mount, Route
    from starlette.staticfiles import StaticFiles

    from .._git import Repo
    from . import rest, views

    repo = repo_path if isinstance(repo_path, Repo) else Repo.discover(repo_path, bare_ok=True)

    index_html = os.path.join(STATIC_DIR, "index.html")

    async def page(request: Request) -> Response:
        if os.path.isfile(index_html):
            return FileResponse(index_html, media_type="text/html; charset=utf-8")
        return PlainTextResponse(
            "gitrun ui: the page is not installed (gitrun/ui/static/index.html is missing); "
            "MLflow's REST API is served under /api/2.0/mlflow/.",
            status_code=503,
        )

    routes: list[BaseRoute] = []
    for prefix in rest.PREFIXES:
        routes.append(Mount(prefix, routes=list(rest.routes)))
    for prefix in rest.ARTIFACT_PREFIXES:
        routes.append(Mount(prefix, routes=list(rest.artifact_routes)))
    routes += list(rest.top_routes)
    routes += list(views.routes)
    routes += [
        Route("/", page, methods=["GET", "HEAD"]),
        Route("/runs/{ref:path}", page, methods=["GET", "HEAD"]),
        Route("/compare", page, methods=["GET", "HEAD"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR, check_dir=False), name="static"),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        path = request.url.path
        if path.startswith(API_PREFIXES) or path in rest.TOP_PATHS:
            if request.method in WRITE_METHODS and exc.status_code in (404, 405):
                return rest.read_only_response(request)
            if exc.status_code in (404, 405):
                return rest.error_response(
                    "ENDPOINT_NOT_FOUND",
                    f"No endpoint {request.method} {path} in gitrun ui; docs/ui.md lists the "
                    "endpoints it serves.",
                )
            return rest.error_response("BAD_REQUEST", str(exc.detail), exc.status_code)
        return PlainTextResponse(str(exc.detail), status_code=exc.status_code)

    async def server_error(request: Request, exc: Exception) -> Response:
        return rest.exception_response(exc)

    from starlette.middleware import Middleware

    hosts = list(LOOPBACK_HOSTS) if allowed_hosts is None else list(allowed_hosts)
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error, Exception: server_error},
        middleware=[Middleware(HostCheck, allowed=hosts)],
    )
    app.state.repo = repo
    app.state.repo_path = repo.work_tree or repo.git_dir
    app.state.lock = threading.Lock()
    return app


def hosts_for(host: str) -> list[str]:
    """The Host headers to answer when listening on `host`: loopback names for a
    loopback address; any for an address others reach (the user asked for that)."""
    return list(LOOPBACK_HOSTS) if is_loopback(host) else ["*"]


def _server(app: Any, quiet: bool = True) -> Any:
    import uvicorn

    config = uvicorn.Config(
        app,
        log_level="error" if quiet else "warning",
        access_log=False,
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=2,
    )
    return uvicorn.Server(config)


@contextlib.contextmanager
def running(repo_path: Any = None, port: int = 0, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve the app in a background thread; yields its base URL (no trailing slash)."""
    app = create_app(repo_path, hosts_for(host))
    sock = bind(host, port)
    server = _server(app)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="gitrun-ui", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive():
                raise GitrunError("gitrun ui stopped while starting; see the log above.")
            if time.monotonic() > deadline:
                raise GitrunError("gitrun ui did not start within 30 seconds.")
            time.sleep(0.01)
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def serve(
    repo_path: Any = None,
    host: str = "127.0.0.1",
    port: int = 5000,
    quiet: bool = False,
    on_ready: Any = None,
) -> None:
    """Serve until Ctrl-C (SIGINT) or SIGTERM; returns then, with no traceback.
    `on_ready(url)` is called once the port is bound (the CLI prints the URL)."""
    app = create_app(repo_path, hosts_for(host))
    sock = bind(host, port)
    server = _server(app, quiet=quiet)
    if on_ready is not None:
        on_ready(url_of(sock))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the SIGINT it handled once it stopped
        pass
    finally:
        sock.close()
