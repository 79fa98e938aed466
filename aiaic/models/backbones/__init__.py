"""Colorization backbones: a name-to-builder registry (`aiaic.models.backbones.registry`)."""
