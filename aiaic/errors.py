"""The project's own error types. The CLIs turn these into a clear message and a non-zero exit."""

from __future__ import annotations

from pathlib import Path


class AiaicError(Exception):
    """Base class: an error a user can act on. Its message is shown as is."""


class ConfigError(AiaicError, ValueError):
    """A recipe or flag is invalid (unknown key, wrong type, value out of range).

    Also a ValueError, so a config's `__post_init__` raising it reads as any bad value does.
    """


class InputError(AiaicError):
    """An input file or directory cannot be used. The message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class RecipeMismatchError(AiaicError):
    """An output directory was made with a different recipe (and --overwrite was not given)."""


class RunError(AiaicError):
    """A training run directory lacks what a command needs (a stage, a checkpoint)."""
