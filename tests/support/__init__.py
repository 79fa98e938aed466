"""Builders shared by the tests: tiny clips (`fixtures_av`), shard folders (`split_fixtures`), tiny runs.

`tests/` is on pytest's `pythonpath`, so a test imports them as `from support.fixtures_av import make_clip`.
"""
