"""`AppConfig`: the settings of `aiaic-app` besides the colorize ones (address, upload limit, job history)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AppConfig:
    """Server settings.

    host / port: where to listen (127.0.0.1 by default: only this machine; port 0 = any free port).
    max_upload_mb: largest request accepted (MiB, all files of one upload together).
    keep_jobs: finished jobs whose files are kept (older ones are deleted from the temp dir).
    """

    host: str = "127.0.0.1"
    port: int = 7860
    max_upload_mb: float = 512.0
    keep_jobs: int = 20

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in [0, 65535], got {self.port}")
        if self.max_upload_mb <= 0:
            raise ValueError(f"max_upload_mb must be > 0, got {self.max_upload_mb}")
        if self.keep_jobs < 1:
            raise ValueError(f"keep_jobs must be >= 1, got {self.keep_jobs}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
