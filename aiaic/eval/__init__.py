"""Eval package."""
