"""ParaScore-style paraphrase scoring: meaning kept, wording changed.

score = sim + ω·DS(d), with d the normalised character edit distance to the nearest
training answer and DS(d) = γ if d ≥ γ else −1 + ((γ+1)/γ)·d. A parroted training answer
(d ≈ 0) loses ω; a real paraphrase (d ≥ γ) gains ω·γ.
"""

from __future__ import annotations

from collections.abc import Sequence

from rapidfuzz.distance import Levenshtein

OMEGA = 0.05
GAMMA = 0.35
COPY_THRESHOLD = 0.15  # d below this: the answer is (nearly) a training answer verbatim


def novelty(output: str, training_answers: Sequence[str]) -> float:
    """Normalised edit distance to the nearest training answer (1.0 when there are none)."""
    if not training_answers:
        return 1.0
    return min(Levenshtein.normalized_distance(output.strip().lower(), a.strip().lower()) for a in training_answers)


def diversity(d: float, gamma: float = GAMMA) -> float:
    return gamma if d >= gamma else -1.0 + ((gamma + 1.0) / gamma) * d


def parascore(sim: float, d: float, omega: float = OMEGA) -> float:
    return sim + omega * diversity(d)
