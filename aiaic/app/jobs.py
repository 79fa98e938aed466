"""The app's job queue: one worker thread colours jobs one after another, in the order they came.

A job is one upload (a photo, or a film) with its optional sound. Its files live in its own folder
under the queue's temp dir; the folders of old finished jobs are deleted (`keep` newest are kept).
Progress is counted in frames (a photo is one frame). Cancelling a queued job drops it; cancelling
a running one stops it at the next batch of frames (`JobCancelled` is raised from its progress
callback, which unwinds the colorize call and closes its files).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiaic.errors import AiaicError

log = logging.getLogger(__name__)


class JobCancelled(Exception):
    """Raised inside a running job when the user cancelled it."""


@dataclass
class Job:
    """One colorize request. Times in seconds since the epoch; frames counted as the model colours them."""

    kind: str  # "image" or "video"
    folder: Path
    source: Path
    name: str  # the file name the user gave (shown on the page, used for the download)
    audio: Path | None = None
    audio_name: str | None = None
    use_audio: bool = True
    total_frames: int | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    state: str = "queued"
    message: str = ""
    done_frames: int = 0
    result: Path | None = None
    r: float | None = None  # a photo's r, or a film's mean r
    r_per_second: list[float] = field(default_factory=list)
    guidance: str = ""
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)

    @property
    def download_name(self) -> str:
        stem = Path(self.name).stem or "result"
        suffix = self.result.suffix if self.result is not None else ""
        return f"{stem}_colorized{suffix}"

    def user_message(self, text: str) -> str:
        """`text` with the job's own file paths replaced by the names the user gave."""
        text = text.replace(str(self.source), self.name)
        if self.audio is not None and self.audio_name is not None:
            text = text.replace(str(self.audio), self.audio_name)
        return text.replace(str(self.folder) + "/", "")

    def to_dict(self, position: int | None = None) -> dict:
        """JSON for the page: state, progress, r, and where the result is."""
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "audio_name": self.audio_name,
            "use_audio": self.use_audio,
            "state": self.state,
            "position": position,
            "message": self.message,
            "done_frames": self.done_frames,
            "total_frames": self.total_frames,
            "r": self.r,
            "r_per_second": self.r_per_second,
            "guidance": self.guidance,
            "result_url": f"/api/jobs/{self.id}/result" if self.state == "done" else None,
            "download_name": self.download_name if self.state == "done" else None,
            "seconds": None if self.started is None else (self.finished or time.time()) - self.started,
        }


Work = Callable[[Job, Callable[[int], None]], None]


class JobQueue:
    """Runs `work(job, on_frames)` for each submitted job on one worker thread, in submission order.

    `work` fills the job's result fields; it raises `AiaicError` for a bad input (the job fails with
    that message) and calls `on_frames(n)` as frames are done (which raises `JobCancelled` once the
    job was cancelled).
    """

    def __init__(self, work: Work, root: Path, keep: int = 20):
        self.work = work
        self.root = Path(root)
        self.keep = keep
        self._jobs: dict[str, Job] = {}
        self._pending: deque[Job] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="aiaic-app-worker", daemon=True)
        self._thread.start()

    def new_folder(self) -> Path:
        folder = self.root / uuid.uuid4().hex[:12]
        folder.mkdir(parents=True)
        return folder

    def submit(self, job: Job) -> Job:
        with self._cond:
            self._jobs[job.id] = job
            self._pending.append(job)
            self._cond.notify()
        log.info("job %s queued: %s %s", job.id, job.kind, job.name)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._cond:
            return self._jobs.get(job_id)

    def position(self, job: Job) -> int | None:
        """1-based place among the jobs still waiting, or None when it is not waiting."""
        with self._cond:
            for k, j in enumerate(self._pending):
                if j is job:
                    return k + 1
        return None

    def jobs(self) -> list[Job]:
        with self._cond:
            return list(self._jobs.values())

    def cancel(self, job: Job) -> None:
        """Drop a waiting job, or ask a running one to stop at its next batch of frames."""
        with self._cond:
            job.cancel_requested.set()
            if job.state == "queued":
                self._pending.remove(job)
                self._end(job, "cancelled", "cancelled before it started")

    def _end(self, job: Job, state: str, message: str = "") -> None:
        job.state, job.message, job.finished = state, message, time.time()
        job.ended.set()

    def _next(self) -> Job | None:
        with self._cond:
            while not self._pending and not self._stop:
                self._cond.wait()
            if self._stop:
                return None
            job = self._pending.popleft()
            job.state, job.started = "running", time.time()
            return job

    def _loop(self) -> None:
        while (job := self._next()) is not None:
            self._run(job)
            self._prune()

    def _run(self, job: Job) -> None:
        def on_frames(n: int) -> None:
            job.done_frames += n
            if job.cancel_requested.is_set():
                raise JobCancelled(job.id)

        try:
            if job.cancel_requested.is_set():
                raise JobCancelled(job.id)
            self.work(job, on_frames)
        except JobCancelled:
            log.info("job %s cancelled after %d frames", job.id, job.done_frames)
            job.result = None
            self._end(job, "cancelled", f"cancelled after {job.done_frames} frames")
        except AiaicError as e:
            log.warning("job %s failed: %s", job.id, e)
            self._end(job, "failed", job.user_message(str(e)))
        except Exception as e:  # the server must keep serving; the page shows what went wrong
            log.exception("job %s failed unexpectedly", job.id)
            self._end(job, "failed", f"internal error ({type(e).__name__}: {e})")
        else:
            self._end(job, "done")
            log.info("job %s done: %d frames, r %s", job.id, job.done_frames, job.r)

    def _prune(self) -> None:
        """Delete the folders of finished jobs beyond the `keep` newest."""
        with self._cond:
            ended = [j for j in self._jobs.values() if j.ended.is_set()]
            old = sorted(ended, key=lambda j: j.finished or 0.0)[: max(0, len(ended) - self.keep)]
            for j in old:
                del self._jobs[j.id]
        for j in old:
            shutil.rmtree(j.folder, ignore_errors=True)

    def close(self, timeout: float = 5.0) -> None:
        """Stop after the running job (cancelled) and remove the temp dir."""
        with self._cond:
            self._stop = True
            for j in self._jobs.values():
                j.cancel_requested.set()
            self._cond.notify_all()
        self._thread.join(timeout)
        shutil.rmtree(self.root, ignore_errors=True)
