"""Thin Typer entry points. Each command builds a config, calls one library function, and turns
`aiaic.errors.AiaicError` into a clear message and a non-zero exit status."""
