"""Mismatched audio for `aiaic-eval --audio mismatched`: every picture hears a second of audio that is
not its own and not of its class.

The paper builds the relevance mechanism to "increase dependency on the visual backbone when audio and
vision are irrelevant"; evaluating with audio of another class measures exactly that on any split. The
split is streamed in windows of `WINDOW` consecutive samples (shard order; a last short window joins
the one before), and within each window a fixed derangement is drawn from the seed and the window's
index (`donors`): memory is one window of decoded samples, and the same seed gives the same pairs.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Sequence
from typing import TypeVar

import numpy as np

WINDOW = 512  # samples per derangement window (at most 2 x WINDOW - 1 decoded samples held)
# the variants that hear the sample's own audio and so get a "<variant>_mismatched_audio" entry
SUFFIX = "_mismatched_audio"

T = TypeVar("T")


def mismatched_name(variant: str) -> str:
    """The metrics.json entry of `variant` hearing mismatched audio ("full" -> "full_mismatched_audio")."""
    return variant + SUFFIX


def donors(labels: Sequence[Hashable], has_audio: Sequence[bool], rng: np.random.Generator) -> np.ndarray:
    """For each sample i, the index of the sample whose audio it hears: always one with audio and of
    another class. Among the samples with audio it is a derangement (each second heard exactly once):
    their classes are put in a random order, each class's samples shuffled, and sample k of that order
    hears sample k + m (cyclically), m the largest class's size, which leaves every class as long as
    no class holds more than half of them. A sample without audio hears a random other-class sample.

    Raises ValueError when that is impossible (no audio, or a class holding more than half the samples
    with audio), naming the counts.
    """
    n = len(labels)
    if len(has_audio) != n:
        raise ValueError(f"{n} labels but {len(has_audio)} has_audio flags")
    with_audio = [i for i in range(n) if has_audio[i]]
    if not with_audio:
        raise ValueError(f"none of the {n} samples has audio")
    groups: dict[Hashable, list[int]] = {}
    for i in with_audio:
        groups.setdefault(labels[i], []).append(i)
    largest = max(len(g) for g in groups.values())
    if 2 * largest > len(with_audio):
        raise ValueError(
            f"one class holds {largest} of the {len(with_audio)} samples with audio (more than half): "
            "they cannot all hear audio of another class, each second once"
        )
    order: list[int] = []
    for key in rng.permutation(len(groups)):
        group = list(groups.values())[int(key)]
        order += [group[int(j)] for j in rng.permutation(len(group))]
    out = np.full(n, -1, dtype=np.int64)
    for k, i in enumerate(order):
        out[i] = order[(k + largest) % len(order)]
    for i in range(n):
        if out[i] < 0:
            others = [j for j in with_audio if labels[j] != labels[i]]
            if not others:
                raise ValueError(f"sample {i} (class {labels[i]!r}): no sample of another class has audio")
            out[i] = others[int(rng.integers(len(others)))]
    return out


def window_rng(seed: int, window: int) -> np.random.Generator:
    """The generator of window number `window` (0, 1, ...) for `seed`."""
    return np.random.default_rng([seed, window])


def windows(batches: Iterable[list[T]], size: int = WINDOW) -> Iterator[list[T]]:
    """Lists of `size` items from `batches` of `size` items (only the last may be shorter), the last
    short one joined to the one before, so that every window but a lone one has >= `size` items."""
    pending: list[T] | None = None
    for batch in batches:
        if pending is not None and len(batch) < size:
            yield pending + batch
            pending = None
            continue
        if pending is not None:
            yield pending
        pending = batch
    if pending:
        yield pending
