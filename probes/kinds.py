"""Scoring of each probe kind, given the model's raw outputs for a batch of items."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from curriculum.jsonl import Record
from probes.results import ItemResult
from probes.scoring import COPY_THRESHOLD, novelty, parascore
from probes.similarity import cosine_pairs


def _tags(value: Any, known: set[str]) -> dict[str, Any]:
    """Extra fields of an item (e.g. `context`, `mode`) travel with its result."""
    return {k: v for k, v in value.model_dump().items() if k not in known}


def score_paraphrases(
    node_id: str, probe_index: int, records: Sequence[Record[Any]], outputs: Sequence[str],
    training_answers: Sequence[str], gate: float, kind: str = "paraphrase",
) -> list[ItemResult]:
    """Meaning (cosine to the reference) plus a bonus for new wording, a penalty for parroting."""
    sims = cosine_pairs(outputs, [r.value.reference for r in records])
    results = []
    for rec, output, sim in zip(records, outputs, sims):
        d = novelty(output, training_answers)
        score = min(1.0, max(0.0, parascore(sim, d)))  # gates live in [0, 1]
        results.append(ItemResult(
            node_id, kind, probe_index, rec.line, rec.value.prompt, output, rec.value.reference,
            score=score, passed=score >= gate, sim=sim, novelty=d, copied=d < COPY_THRESHOLD,
            tags=_tags(rec.value, {"prompt", "reference"}),
        ))
    return results


def choice_prompt(prompt: str, choices: Sequence[str]) -> str:
    """The question with its options listed, so the model sees what it chooses among."""
    options = "\n".join(f"- {c}" for c in choices)
    return f"{prompt}\nOptions:\n{options}\nAnswer with one option."


def score_choices(
    node_id: str, probe_index: int, kind: str, records: Sequence[Record[Any]],
    logprobs: Sequence[Sequence[tuple[float, int]]],
) -> list[ItemResult]:
    """Pick the option with the best per-token log-likelihood; score 1 when it is the answer."""
    results = []
    for rec, per_choice in zip(records, logprobs):
        normalised = [total / max(n, 1) for total, n in per_choice]
        pick = max(range(len(normalised)), key=normalised.__getitem__)
        correct = pick == rec.value.answer
        results.append(ItemResult(
            node_id, kind, probe_index, rec.line, rec.value.prompt, rec.value.choices[pick],
            rec.value.choices[rec.value.answer], score=float(correct), passed=correct, logprob=normalised[pick],
            tags=_tags(rec.value, {"prompt", "choices", "answer"}),
        ))
    return results
