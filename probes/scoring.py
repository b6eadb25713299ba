"""Paraphrase scoring: does the answer carry the meaning, in words of its own?

An answer that is (nearly) a training answer is not a paraphrase: it scores 0 whatever it
says, so reciting can never clear a gate. Otherwise the score is the meaning it carries:
the share of the item's key facts it states (each fact a set of cue words), blended with its
closest cosine to the references — chosen over cosine alone because cosine rewards fluent
answers on the topic whether right or wrong (bench/signals.py, `metric_pair_accuracy`).
Items without facts get cues derived from their references: each content word (not a stop word,
not a word of the prompt), cut to its first five letters so 'hardens' meets 'harden'.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from rapidfuzz.distance import Levenshtein

COPY_THRESHOLD = 0.15  # d below this: the answer is (nearly) a training answer verbatim
FACT_WEIGHT = 0.6  # share of the score that comes from key facts when the item has them


def novelty(output: str, training_answers: Sequence[str]) -> float:
    """Normalised edit distance to the nearest training answer (1.0 when there are none)."""
    if not training_answers:
        return 1.0
    return min(Levenshtein.normalized_distance(output.strip().lower(), a.strip().lower()) for a in training_answers)


STEM = 5  # letters of a derived cue: enough to tell words apart, short enough to meet their inflections


def derived_facts(prompt: str, references: Sequence[str]) -> list[list[str]]:
    """One single-cue fact per content word of the references that the prompt does not already say."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    asked = set(re.findall(r"[a-z]+", prompt.casefold()))
    cues = [w[:STEM] for ref in references for w in re.findall(r"[a-z][a-z\-]+", ref.casefold())
            if len(w) >= 3 and w not in ENGLISH_STOP_WORDS and w not in asked]
    return [[c] for c in dict.fromkeys(cues)]


@lru_cache(maxsize=4096)
def _cue(word: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(word.casefold()))


def fact_recall(output: str, facts: Sequence[Sequence[str]]) -> float | None:
    """The share of facts the answer states: a fact counts when any of its cues starts a word of the answer."""
    if not facts:
        return None
    text = output.casefold()
    return sum(1 for cues in facts if any(_cue(c).search(text) for c in cues)) / len(facts)


def meaning(sim: float, facts: float | None, fact_weight: float = FACT_WEIGHT) -> float:
    """Key facts first, closeness to the references second; cosine alone when there are no facts."""
    sim = max(0.0, min(1.0, sim))
    return sim if facts is None else fact_weight * facts + (1 - fact_weight) * sim


def paraphrase_score(sim: float, facts: float | None, d: float) -> float:
    """0 for a recited training answer; otherwise the meaning the answer carries, in [0, 1]."""
    return 0.0 if d < COPY_THRESHOLD else meaning(sim, facts)
