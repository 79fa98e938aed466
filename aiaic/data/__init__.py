"""Data: sources (VGGSound, AVE, folder), decoding, audio features, shard writing, splits, loaders."""
