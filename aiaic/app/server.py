"""The web server of `aiaic-app`: one page, a JSON job API, and `POST /api/colorize` for scripts.

    GET  /                        the page (static/index.html; its CSS and JS under /static/)
    GET  /api/info                model facts and the upload limit
    POST /api/jobs                multipart `media` (photo or film), optional `audio`, `use_audio`
                                  ("true"/"false") -> 202 {"id", ...}; a bad input -> 400 {"error"}
    GET  /api/jobs                every job the server still holds
    GET  /api/jobs/{id}           state (queued/running/done/failed/cancelled), place in the queue,
                                  frames done of total, r, r per second of a film, result URL
    POST /api/jobs/{id}/cancel    drop a waiting job or stop a running one
    GET  /api/jobs/{id}/result    the colourized PNG or film (`?download=1`: as an attachment)
    POST /api/colorize            multipart `image` or `video`, optional `audio`, optional `no_audio`
                                  ("true"): waits and answers with the PNG or film; headers X-Aiaic-R
                                  (a photo's r or a film's mean r), X-Aiaic-R-Per-Second (a film's,
                                  comma-separated), X-Aiaic-Guidance, X-Aiaic-Job

A request larger than the upload limit gets 413 with a message; errors are JSON `{"error": "..."}`.
Jobs run one at a time in submission order (`aiaic.app.jobs.JobQueue`); the routes are in `aiaic.app.routes`.
"""

from __future__ import annotations

import json
import logging
import socket
import tempfile
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from aiaic.app.config import AppConfig
from aiaic.app.jobs import JobQueue
from aiaic.app.routes import STATIC, error_response, router
from aiaic.app.work import JobColorizer
from aiaic.colorize.config import ColorizeConfig
from aiaic.errors import AiaicError

log = logging.getLogger(__name__)


class UploadTooLarge(Exception):
    pass


class UploadLimit:
    """ASGI middleware: a request body over `limit` bytes gets 413 (by its Content-Length, or as it
    streams in). An over-long body announced up front is read and dropped before answering, so a
    browser sees the answer instead of a reset connection."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    def _message(self, size: int | None) -> bytes:
        mib = self.limit / 2**20
        what = f"{size / 2**20:.1f} MiB" if size is not None else "larger"
        text = f"upload too large: {what}, over the limit of {mib:g} MiB (aiaic-app --max-upload-mb)"
        return json.dumps({"error": text}).encode()

    async def _reply_413(self, send, size: int | None) -> None:
        body = self._message(size)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        size = int(length) if length is not None and length.isdigit() else None
        if size is not None and size > self.limit:
            more = True
            while more:
                message = await receive()
                more = message.get("more_body", False) and message["type"] == "http.request"
            return await self._reply_413(send, size)
        seen = 0
        started = False

        async def counted_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise UploadTooLarge()
            return message

        async def tracked_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except UploadTooLarge:
            if started:
                raise
            await self._reply_413(send, None)


def create_app(queue: JobQueue, app_cfg: AppConfig, model_info: dict) -> FastAPI:
    """The FastAPI application around a running `queue` (closed when the application shuts down)."""

    @asynccontextmanager
    async def lifespan(_app):
        yield
        queue.close()

    app = FastAPI(title="aiaic", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.queue, app.state.app_cfg, app.state.model_info = queue, app_cfg, model_info
    app.add_middleware(UploadLimit, limit=app_cfg.max_upload_bytes)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(router)

    @app.exception_handler(AiaicError)
    async def aiaic_error(_request, exc: AiaicError):
        return error_response(400, str(exc))

    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise AiaicError(f"cannot listen on {host}:{port} ({e.strerror or e})") from e
    sock.listen(128)
    return sock


def serve(app_cfg: AppConfig, colorize_cfg: ColorizeConfig, on_ready: Callable[[str], None] = print) -> None:
    """Load the model `colorize_cfg` names, listen on `app_cfg`'s address, and serve until stopped.

    `on_ready(url)` is called once the socket listens (the CLI prints the address there).
    """
    import uvicorn

    from aiaic.colorize.run import load_model
    from aiaic.runs.device import resolve_device

    device = resolve_device(colorize_cfg.device)
    model = load_model(colorize_cfg, device)
    if colorize_cfg.engine == "onnxruntime":
        from aiaic.engine.select import onnx_engine

        model = onnx_engine(model, colorize_cfg.precision)  # checked on a built-in test picture
    model_info = {
        "variant": getattr(model, "variant", None),
        "backbone": model.model.config.backbone,
        "run": None if colorize_cfg.run is None else str(colorize_cfg.run),
        "image_size": model.image_size,
        "device": str(device),
    }
    colorizer = JobColorizer(colorize_cfg, model, device)
    colorizer.warm_up()
    sock = bind(app_cfg.host, app_cfg.port)
    root = Path(tempfile.mkdtemp(prefix="aiaic-app-"))
    queue = JobQueue(colorizer, root, keep=app_cfg.keep_jobs)
    app = create_app(queue, app_cfg, model_info)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    on_ready(f"http://{shown}:{port}/")
    try:
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        server.run(sockets=[sock])
    finally:
        queue.close()
        sock.close()
