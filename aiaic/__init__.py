"""aiaic: audio-infused automatic image colorization (Zhao, Chen, Zhao, Zhang).

Library packages: `aiaic.data` (extraction, splits, loaders), `aiaic.models` (colour space,
guidance, encoders, backbones), `aiaic.train` (stages, loop, checkpoints, DDP), `aiaic.eval`
(metrics, reports). `aiaic.cli` holds the thin Typer entry points; `aiaic.demo` the synthetic data the
demo, the tests and the benchmarks are built from (fixtures, not library).
"""

__version__ = "0.1.0"
