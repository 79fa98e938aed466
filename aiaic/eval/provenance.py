"""Where the numbers came from: the run's stages, the shards' manifest, and the code's git commit."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import aiaic
from aiaic.config import recipe_hash
from aiaic.data.manifest import Manifest
from aiaic.eval.perceptual import sha256_file


def git_commit() -> dict:
    """{"commit", "dirty"} of the repository holding the aiaic package, or {"commit": None, "reason"}."""
    repo = Path(aiaic.__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return {"commit": None, "reason": head.stderr.strip() or "not a git repository"}
        status = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip()), "repo": str(repo)}
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"commit": None, "reason": f"git not usable ({e})"}


def _stage_record(stage_dir: Path) -> dict:
    rec: dict = {"dir": str(stage_dir)}
    cfg_path = stage_dir / "config.json"
    if cfg_path.is_file():
        cfg = json.loads(cfg_path.read_text())
        rec["complete"] = bool(cfg.get("complete"))
        rec["config_hash"] = recipe_hash(cfg)
        for key in ("created", "finished", "step", "steps", "epochs"):
            if key in cfg:
                rec[key] = cfg[key]
    weights = stage_dir / "model.safetensors"
    if weights.is_file():
        rec["weights_sha256"] = sha256_file(weights)
    return rec


def provenance(run: Path, shards: Path, manifest: Manifest, models: dict) -> dict:
    """A JSON-safe record of the run (stages used), the shards (manifest facts) and the code."""
    stages = {}
    records: dict[Path, dict] = {}  # one hash of each weights file, however many variants use it
    for variant, model in models.items():
        stage_dir = Path(getattr(model, "stage_dir", run / variant))
        if stage_dir not in records:
            records[stage_dir] = _stage_record(stage_dir)
        stages[variant] = records[stage_dir]
    return {
        "run": str(Path(run).resolve()),
        "stages": stages,
        "shards": str(Path(shards).resolve()),
        "manifest": {
            "created": manifest.created,
            "seed": manifest.seed,
            "recipe_hash": recipe_hash(manifest.recipe),
            "splits": {
                k: {"samples": v.samples, "videos": v.videos, "categories": v.categories}
                for k, v in manifest.splits.items()
            },
            "ood_categories": len(manifest.ood_categories),
        },
        "code": {"aiaic": getattr(aiaic, "__version__", None), **git_commit()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
