"""Developer tasks: `nox -s tests`, `nox -s lint`, `nox -s typecheck`, `nox -s bench`, `nox -s demo`.

Every session installs the package with the pinned versions of `constraints.txt`, so CI and a
developer machine run the same torch (2.11.0) and the same libraries. Where `uv` is installed
(`pip install uv`), nox builds its virtualenvs with it and every session takes torch and its CUDA
wheels from uv's one cache instead of downloading them again; otherwise it falls back to virtualenv.

    nox -s tests -- -m "not slow"     # the quick loop: skips the learning and multi-process tests
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "uv|virtualenv"

PYTHON = "3.11"
CONSTRAINTS = ("-c", "constraints.txt")
LINTED = ("aiaic", "tests", "benchmarks", "pipelines", "noxfile.py")


def _install(session: nox.Session, extras: str = "dev") -> None:
    session.install(*CONSTRAINTS, "-e", f".[{extras}]")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite (uses ../shared/data where present; tests that need it skip with a reason).
    The app's browser tests drive /usr/bin/chromium (`.ci/run` installs it) and skip without it."""
    session.install(*CONSTRAINTS, "-e", ".[dev,app,onnx]", "playwright", "requests")
    session.run("pytest", *session.posargs, env={"OMP_NUM_THREADS": "2"})


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff's rules and its formatting (`ruff format` applies what `--check` reports)."""
    session.install(*CONSTRAINTS, "ruff")
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy over the library (settings in pyproject.toml), with the app's and the onnx extras so aiaic.app
    and aiaic.engine are checked against FastAPI's and ONNX Runtime's own types."""
    _install(session, "dev,app,onnx")
    session.run("mypy", "aiaic")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks; writes benchmarks/results/latest.json and latest.md. Never fails for being slow."""
    _install(session, "dev,app,onnx")
    session.run("python", "-m", "benchmarks.run", *session.posargs)


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The main job: generated sample corpus -> extract -> split -> inspect -> train -> eval -> colorize."""
    _install(session)
    session.run("python", "pipelines/demo.py", *session.posargs)
