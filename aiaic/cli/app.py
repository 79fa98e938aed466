r"""`aiaic-app`: colourize photos and films (with their sound) in the browser, on this machine.

    aiaic-app --run runs/vggsound                                   # http://127.0.0.1:7860/
    aiaic-app --backbone ddcolor-tiny --backbone-weights ddcolor_tiny.pt    # the backbone alone
    aiaic-app --run runs/ddc --backbone ddcolor-tiny --backbone-weights ddcolor_tiny.pt --port 8000
    aiaic-app --backbone disco --backbone-weights disco-beta.pth.tar --seed 130   # DISCO alone

Needs the optional extra: pip install "aiaic[app]". Flags override the recipe's [colorize] and [app]
tables. Listens on 127.0.0.1 only unless --host says otherwise.
"""

from __future__ import annotations

from pathlib import Path

import typer

from aiaic.cli._common import console, setup_logging, user_errors
from aiaic.config import build_config, load_recipe, recipe_section
from aiaic.errors import ConfigError

app = typer.Typer(
    name="aiaic-app", help="Colourize photos and films with sound in a local web page.", add_completion=False
)


@app.command()
def serve(
    run: Path = typer.Option(None, "--run", help="Training run directory (aiaic-train --out)."),
    variant: str = typer.Option(None, "--variant", help="Model variant of the run (default full)."),
    backbone: str = typer.Option(None, "--backbone", help="Pretrained backbone, e.g. ddcolor-tiny."),
    backbone_weights: Path = typer.Option(None, "--backbone-weights", help="Weights file of --backbone."),
    image_size: int = typer.Option(None, "--image-size", help="Model input size (pixels) for --backbone."),
    seed: int = typer.Option(None, "--seed", help="Seed of the backbone's random choices (DISCO's anchors)."),
    device: str = typer.Option(None, "--device", help="auto | cpu | cuda."),
    batch_size: int = typer.Option(None, "--batch-size", help="Film frames per forward pass (default 8)."),
    max_pixels: int = typer.Option(
        None, "--max-pixels", help="Largest picture accepted, width x height (default 250000000)."
    ),
    engine: str = typer.Option(None, "--engine", help="torch | onnxruntime (the model exported to ONNX)."),
    precision: str = typer.Option(
        None, "--precision", help="fp32 | int8 (onnxruntime: quantized weights; its cost printed)."
    ),
    host: str = typer.Option(None, "--host", help="Address to listen on (default 127.0.0.1: this machine)."),
    port: int = typer.Option(None, "--port", help="Port (default 7860; 0 = any free port)."),
    max_upload_mb: float = typer.Option(None, "--max-upload-mb", help="Largest upload in MiB (default 512)."),
    config: Path = typer.Option(
        None, "--config", help="Recipe TOML (pipelines/*.toml); its \\[colorize] and \\[app] tables."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    """Start the server and print its address; Ctrl+C stops it."""
    setup_logging(verbose)
    with user_errors():
        try:
            from aiaic.app.server import serve as run_server
        except ImportError as e:
            raise ConfigError(f'aiaic-app needs its extra: pip install "aiaic[app]" ({e})') from e
        from aiaic.app.config import AppConfig
        from aiaic.colorize.config import ColorizeConfig

        recipe = load_recipe(config)
        flags = {
            "run": run,
            "variant": variant,
            "device": device,
            "batch_size": batch_size,
            "backbone": backbone,
            "backbone_weights": backbone_weights,
            "image_size": image_size,
            "seed": seed,
            "max_pixels": max_pixels,
            "engine": engine,
            "precision": precision,
        }
        colorize_cfg = build_config(ColorizeConfig, recipe_section(recipe, "colorize"), flags)
        app_flags = {"host": host, "port": port, "max_upload_mb": max_upload_mb}
        app_cfg = build_config(AppConfig, recipe_section(recipe, "app"), app_flags)

        def ready(url: str) -> None:
            typer.echo(f"aiaic-app: serving on {url}  (open it in a browser; Ctrl+C stops)")
            if app_cfg.host not in ("127.0.0.1", "localhost", "::1"):
                console.print(
                    f"[yellow]warning:[/] listening on {app_cfg.host}: reachable from other machines"
                )

        run_server(app_cfg, colorize_cfg, on_ready=ready)


if __name__ == "__main__":
    app()
