"""Validation on held-out whole tracks: which observed tracks to hide from training, and their score.

Imputation fills whole missing tracks, so a model is chosen best by how well it predicts whole
tracks it never saw, not random entries of tracks it trains on (those keep improving while held-out
tracks get worse: the per-position genome factors memorise). :func:`choose_validation_tracks` picks
tracks the way the imputation task looks: every held-out track's biosample and assay keep other
training tracks, and the held-out tracks spread over biosamples and assays like a Latin square when
the compendium allows it.

Examples
--------
>>> pairs = [(b, a) for b in "ABC" for a in "xyz"]
>>> held = choose_validation_tracks(pairs, 3, seed=0)
>>> sorted(b for b, _ in held), sorted(a for _, a in held)
(['A', 'B', 'C'], ['x', 'y', 'z'])
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..exceptions import ModelError

#: Positions scored per validation track (evenly spaced over the training region when it has more).
VALIDATION_POSITIONS = 50_000


def choose_validation_tracks(pairs, n_tracks: int, seed: int | None = 0) -> list[tuple[str, str]]:
    """Up to ``n_tracks`` of ``pairs`` to hold out, each leaving its biosample and assay other tracks.

    Greedy: each pick is the candidate whose biosample and assay have been held out least so far
    (a Latin-square spread), then the one whose assay keeps the most training tracks (its average
    activity stays informative), ties broken by a seeded shuffle. Fewer than ``n_tracks`` come back
    when no more tracks can be held out under the rule.

    Parameters
    ----------
    pairs : list of (biosample, assay)
        The observed training tracks.
    n_tracks : int
    seed : int or None
        Seeds the tie-breaking shuffle (None: 0).

    Returns
    -------
    list of (biosample, assay), in the order picked.
    """
    pairs = [(str(b), str(a)) for b, a in pairs]
    order = np.random.default_rng(0 if seed is None else seed).permutation(len(pairs))
    left_b = Counter(b for b, _ in pairs)
    left_a = Counter(a for _, a in pairs)
    held_b, held_a = Counter(), Counter()
    chosen: list[tuple[str, str]] = []
    candidates = [pairs[i] for i in order]
    while len(chosen) < n_tracks:
        allowed = [(b, a) for b, a in candidates if (b, a) not in chosen and left_b[b] > 1 and left_a[a] > 1]
        if not allowed:
            break
        pick = min(allowed, key=lambda p: (held_b[p[0]] + held_a[p[1]], max(held_b[p[0]], held_a[p[1]]), -left_a[p[1]]))
        chosen.append(pick)
        left_b[pick[0]] -= 1
        left_a[pick[1]] -= 1
        held_b[pick[0]] += 1
        held_a[pick[1]] += 1
    return chosen


def resolve_validation_tracks(spec, pairs, seed) -> list[tuple[str, str]]:
    """The held-out tracks from ``spec``: a count (chosen by :func:`choose_validation_tracks`) or
    an explicit list of observed (biosample, assay) pairs, checked against the rule."""
    if spec is None or (isinstance(spec, int | np.integer) and not isinstance(spec, bool) and spec == 0):
        return []
    if isinstance(spec, int | np.integer) and not isinstance(spec, bool):
        if spec < 0:
            raise ModelError(f"validation_tracks must be a count >= 0 or a list of (biosample, assay), got {spec}")
        chosen = choose_validation_tracks(pairs, int(spec), seed)
        if not chosen:
            raise ModelError("no observed track can be held out for validation: every biosample or assay has a "
                             "single training track. Train without validation_tracks")
        return chosen
    try:
        chosen = [(str(b), str(a)) for b, a in spec]
    except (TypeError, ValueError):
        raise ModelError(f"validation_tracks must be a count or a list of (biosample, assay) pairs, got {spec!r}") from None
    unknown = [p for p in chosen if p not in set(pairs)]
    if unknown:
        raise ModelError(f"validation tracks {unknown[:5]} are not training tracks (observed tracks of the model); "
                         "choose from ds.epi.tracks()")
    rest = [p for p in pairs if p not in set(chosen)]
    lost_b = sorted({b for b, _ in pairs} - {b for b, _ in rest})
    lost_a = sorted({a for _, a in pairs} - {a for _, a in rest})
    if lost_b or lost_a:
        raise ModelError(f"holding out {chosen} leaves biosample(s) {lost_b} / assay(s) {lost_a} without a training "
                         "track, so their factors could not be learned; hold out fewer tracks of them")
    return chosen


def validation_positions(positions: np.ndarray, limit: int = VALIDATION_POSITIONS) -> np.ndarray:
    """At most ``limit`` of ``positions``, evenly spaced (all of them when there are fewer).

    Examples
    --------
    >>> validation_positions(np.arange(10), limit=4).tolist()
    [0, 3, 6, 9]
    """
    positions = np.asarray(positions)
    if len(positions) <= limit:
        return positions
    return positions[np.unique(np.linspace(0, len(positions) - 1, limit).round().astype(np.int64))]
