"""Colorize images and videos (with their soundtracks) using a trained run."""
