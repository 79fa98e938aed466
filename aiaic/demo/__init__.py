"""Synthetic data for the demo, the tests and the benchmarks (fixtures, not library).

`aiaic.demo.corpus`: a folder of synthetic videos where only the sound tells the colour (the CPU demo's
input, `pipelines/demo.py`). `aiaic.demo.shards`: tiny split directories and raw extractions with known
content, written directly as shards (the tests' and benchmarks' input).
"""
