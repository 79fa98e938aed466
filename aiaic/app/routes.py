"""The HTTP routes of `aiaic-app` (the table is in `aiaic.app.server`'s docstring).

The routes find the job queue, the server settings and the model facts in `request.app.state`
(`queue`, `app_cfg`, `model_info`), which `create_app` fills.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from aiaic.app.jobs import Job, JobQueue
from aiaic.app.uploads import BIG_PIXELS, inspect_media, inspect_sound, safe_name
from aiaic.colorize.image import MAX_PIXELS
from aiaic.errors import InputError

STATIC = Path(__file__).resolve().parent / "static"
MEDIA_TYPES = {
    ".png": "image/png",
    ".mp4": "video/mp4",
    ".mkv": "video/x-matroska",
    ".mov": "video/quicktime",
}

router = APIRouter()


def error_response(status: int, text: str) -> JSONResponse:
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
        base = getattr(queue.work, "base", None)  # the JobColorizer's ColorizeConfig
        info = inspect_media(raw, name, getattr(base, "max_pixels", MAX_PIXELS))
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
    big = info.kind == "image" and info.width * info.height > BIG_PIXELS
    return Job(
        message=f"a big picture ({info.width * info.height / 1e6:.0f} megapixels): jobs run one at a time"
        if big
        else "",
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


async def read_job(request: Request, media_fields: tuple[str, ...], use_audio: Callable) -> Job:
    """The job a multipart request asks for: its file (in the first of `media_fields` present), its
    optional `audio`, and `use_audio(form)`; stored and checked, not yet submitted."""
    try:
        form = await request.form()
    except HTTPException as e:  # a malformed multipart body
        raise InputError("upload", f"the form cannot be read ({e.detail})") from e
    media = _file_field(form, *media_fields)
    if media is None:
        raise InputError("upload", f"no file in the form field {' or '.join(map(repr, media_fields))}")
    audio = _file_field(form, "audio")
    return await run_in_threadpool(_build_job, request.app.state.queue, media, audio, use_audio(form))


def _queue(request: Request) -> JobQueue:
    return request.app.state.queue


def _lookup(request: Request, job_id: str) -> Job:
    job = _queue(request).get(job_id)
    if job is None:
        raise InputError(job_id, "no such job (finished jobs are forgotten after a while)")
    return job


def _result_response(job: Job, download: bool) -> FileResponse:
    if job.state != "done" or job.result is None or not job.result.is_file():
        raise InputError(job.id, f"has no result ({job.state}{': ' + job.message if job.message else ''})")
    return FileResponse(
        job.result,
        media_type=MEDIA_TYPES.get(job.result.suffix, "application/octet-stream"),
        filename=job.download_name if download else None,
    )


@router.get("/", include_in_schema=False)
async def page():
    return FileResponse(STATIC / "index.html", media_type="text/html")


@router.get("/api/info")
async def info(request: Request):
    state = request.app.state
    return {"model": state.model_info, "max_upload_bytes": state.app_cfg.max_upload_bytes}


@router.post("/api/jobs", status_code=202)
async def submit(request: Request):
    job = await read_job(request, ("media", "image", "video"), lambda f: _truthy(f.get("use_audio"), True))
    _queue(request).submit(job)
    return job.to_dict(_queue(request).position(job))


@router.get("/api/jobs")
async def list_jobs(request: Request):
    queue = _queue(request)
    return [j.to_dict(queue.position(j)) for j in queue.jobs()]


@router.get("/api/jobs/{job_id}")
async def status(request: Request, job_id: str):
    job = _lookup(request, job_id)
    return job.to_dict(_queue(request).position(job))


@router.post("/api/jobs/{job_id}/cancel")
async def cancel(request: Request, job_id: str):
    job = _lookup(request, job_id)
    _queue(request).cancel(job)
    return job.to_dict(_queue(request).position(job))


@router.get("/api/jobs/{job_id}/result")
async def result(request: Request, job_id: str, download: bool = False):
    return _result_response(_lookup(request, job_id), download)


@router.post("/api/colorize")
async def colorize_now(request: Request):
    job = await read_job(request, ("image", "video"), lambda f: not _truthy(f.get("no_audio"), False))
    _queue(request).submit(job)
    await run_in_threadpool(job.ended.wait)
    if job.state != "done":
        text = job.message if job.state == "failed" else f"{job.name}: {job.state}: {job.message}"
        return error_response(422, text)
    response = _result_response(job, download=True)
    response.headers["X-Aiaic-R"] = f"{job.r:.6f}"
    response.headers["X-Aiaic-Guidance"] = job.guidance
    response.headers["X-Aiaic-Job"] = job.id
    if job.kind == "video":
        response.headers["X-Aiaic-R-Per-Second"] = ",".join(f"{r:.4f}" for r in job.r_per_second)
    return response
