"""`aiaic-convert`: a backbone's released weight file -> a safetensors copy that loads without conversion.

    aiaic-convert my_model_colorization.h5 -o chromagan.safetensors
    aiaic-colorize photo.jpg --backbone chromagan --backbone-weights chromagan.safetensors -o out/

Today: ChromaGAN's Keras h5 (read with h5py; library: aiaic.models.backbones.chromagan.convert_h5).
The copy holds the same tensors under the PyTorch module's names; the h5 need not be read again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aiaic.cli._common import console, setup_logging, user_errors

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def convert(
    src: Annotated[Path, typer.Argument(help="ChromaGAN's Keras .h5 (my_model_colorization.h5).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The .safetensors file to write.")],
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Convert ChromaGAN's released Keras h5 into a safetensors copy (`--backbone-weights` reads both)."""
    setup_logging(verbose)
    from aiaic.errors import InputError
    from aiaic.models.backbones.chromagan import convert_h5

    with user_errors():
        if output.suffix != ".safetensors":
            raise InputError(output, "the copy must end in .safetensors")
        convert_h5(src, output)
    console.print(f"wrote {output}", markup=False, highlight=False)


if __name__ == "__main__":
    app()
