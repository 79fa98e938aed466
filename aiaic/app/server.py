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
Jobs run one at a time in submission order (`aiaic.app.jobs.JobQueue`).
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import tempfile
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from aiaic.app.config import AppConfig
from aiaic.app.jobs import Job, JobQueue
from aiaic.app.uploads import inspect_media, inspect_sound, safe_name
from aiaic.app.work import JobColorizer
from aiaic.colorize.config import ColorizeConfig
from aiaic.errors import AiaicError, InputError

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
MEDIA_TYPES = {
    ".png": "image/png",
    ".mp4": "video/mp4",
    ".mkv": "video/x-matroska",
    ".mov": "video/quicktime",
}


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


def _error(status: int, text: str) -> JSONResponse:
    return JSONResponse({"error": text}, status_code=status)


def _truthy(value, default: bool) -> bool:
    if value is None or value == "":
        return default
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _store(upload: UploadFile, dst: Path) -> None:
    upload.file.seek(0)
    with open(dst, "wb") as f:
        shutil.copyfileobj(upload.file, f, 1 << 20)


def _build_job(queue: JobQueue, media: UploadFile, audio: UploadFile | None, use_audio: bool) -> Job:
    """Store the upload in a new job folder and check it (runs in a worker thread, not the event loop)."""
    folder = queue.new_folder()
    try:
        name = safe_name(media.filename, "upload")
        raw = folder / "upload.bin"
        _store(media, raw)
        info = inspect_media(raw, name)
        source = raw.rename(folder / f"input{info.suffix}")
        audio_path, audio_name = None, None
        if audio is not None:
            audio_name = safe_name(audio.filename, "sound")
            audio_path = folder / f"sound{Path(audio_name).suffix.lower() or '.bin'}"
            _store(audio, audio_path)
            inspect_sound(audio_path, audio_name)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return Job(
        kind=info.kind,
        folder=folder,
        source=source,
        name=name,
        audio=audio_path,
        audio_name=audio_name,
        use_audio=use_audio,
        total_frames=info.frames,
    )


def _file_field(form, *names: str) -> UploadFile | None:
    for n in names:
        value = form.get(n)
        if isinstance(value, UploadFile) and (value.filename or value.size):
            return value
    return None


def create_app(queue: JobQueue, app_cfg: AppConfig, model_info: dict) -> FastAPI:
    """The FastAPI application around a running `queue` (closed when the application shuts down)."""

    @asynccontextmanager
    async def lifespan(_app):
        yield
        queue.close()

    app = FastAPI(title="aiaic", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.add_middleware(UploadLimit, limit=app_cfg.max_upload_bytes)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(AiaicError)
    async def aiaic_error(_request, exc: AiaicError):
        return _error(400, str(exc))

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/api/info")
    async def info():
        return {"model": model_info, "max_upload_bytes": app_cfg.max_upload_bytes}

    async def read_job(request: Request, media_fields: tuple[str, ...], audio_flag: Callable) -> Job:
        try:
            form = await request.form()
        except HTTPException as e:  # a malformed multipart body
            raise InputError("upload", f"the form cannot be read ({e.detail})") from e
        media = _file_field(form, *media_fields)
        if media is None:
            raise InputError("upload", f"no file in the form field {' or '.join(map(repr, media_fields))}")
        audio = _file_field(form, "audio")
        return await run_in_threadpool(_build_job, queue, media, audio, audio_flag(form))

    def lookup(job_id: str) -> Job:
        job = queue.get(job_id)
        if job is None:
            raise InputError(job_id, "no such job (finished jobs are forgotten after a while)")
        return job

    @app.post("/api/jobs", status_code=202)
    async def submit(request: Request):
        job = await read_job(
            request, ("media", "image", "video"), lambda f: _truthy(f.get("use_audio"), True)
        )
        queue.submit(job)
        return job.to_dict(queue.position(job))

    @app.get("/api/jobs")
    async def list_jobs():
        return [j.to_dict(queue.position(j)) for j in queue.jobs()]

    @app.get("/api/jobs/{job_id}")
    async def status(job_id: str):
        job = lookup(job_id)
        return job.to_dict(queue.position(job))

    @app.post("/api/jobs/{job_id}/cancel")
    async def cancel(job_id: str):
        job = lookup(job_id)
        queue.cancel(job)
        return job.to_dict(queue.position(job))

    def result_response(job: Job, download: bool) -> FileResponse:
        if job.state != "done" or job.result is None or not job.result.is_file():
            raise InputError(
                job.id, f"has no result ({job.state}{': ' + job.message if job.message else ''})"
            )
        return FileResponse(
            job.result,
            media_type=MEDIA_TYPES.get(job.result.suffix, "application/octet-stream"),
            filename=job.download_name if download else None,
        )

    @app.get("/api/jobs/{job_id}/result")
    async def result(job_id: str, download: bool = False):
        return result_response(lookup(job_id), download)

    @app.post("/api/colorize")
    async def colorize_now(request: Request):
        job = await read_job(request, ("image", "video"), lambda f: not _truthy(f.get("no_audio"), False))
        queue.submit(job)
        await run_in_threadpool(job.ended.wait)
        if job.state != "done":
            return _error(
                422, job.message if job.state == "failed" else f"{job.name}: {job.state}: {job.message}"
            )
        response = result_response(job, download=True)
        response.headers["X-Aiaic-R"] = f"{job.r:.6f}"
        response.headers["X-Aiaic-Guidance"] = job.guidance
        response.headers["X-Aiaic-Job"] = job.id
        if job.kind == "video":
            response.headers["X-Aiaic-R-Per-Second"] = ",".join(f"{r:.4f}" for r in job.r_per_second)
        return response

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
    model_info = {
        "variant": getattr(model, "variant", None),
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
