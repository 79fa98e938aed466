"""A trained run on disk, apart from the trainer that writes it.

`checkpoint` is the file format of a stage (weights as safetensors, state, config JSON, written
atomically); `inference` loads a finished run for evaluation and colorize; `device` resolves the
torch device every command runs on. Training (`aiaic.train`) writes runs through `checkpoint`;
evaluation (`aiaic.eval`) and colorize (`aiaic.colorize`) read them through `inference`, and neither
imports `aiaic.train`.
"""
