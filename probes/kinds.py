"""Scoring of each probe kind, given the model's raw outputs for a batch of items."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from curriculum.loading.jsonl import Record
from probes.results import ItemResult
from probes.scoring import COPY_THRESHOLD, derived_facts, fact_recall, novelty, paraphrase_score
from probes.similarity import cosine_best

NEUTRAL = "N/A"  # the content-free question of contextual calibration (Zhao et al. 2021)


def _tags(value: Any, known: set[str]) -> dict[str, Any]:
    """Extra fields of an item (e.g. `context`, `mode`, `domain`) travel with its result; an analogy item's
    situation and question are in its prompt already."""
    return {k: v for k, v in value.model_dump().items() if k not in known | {"situation", "question"}}


def score_paraphrases(
    node_id: str, probe_index: int, records: Sequence[Record[Any]], outputs: Sequence[str],
    training_answers: Sequence[str], gate: float, ref_logprobs: Sequence[float | None] = (), kind: str = "paraphrase",
) -> list[ItemResult]:
    """Key facts stated and closeness to the references; a recited training answer scores 0."""
    sims = cosine_best(outputs, [r.value.all_references() for r in records])
    ref_logprobs = list(ref_logprobs) or [None] * len(records)
    results = []
    for rec, output, sim, ref_lp in zip(records, outputs, sims, ref_logprobs):
        d = novelty(output, training_answers)
        facts = fact_recall(output, item_facts(rec.value))
        score = paraphrase_score(sim, facts, d)
        results.append(ItemResult(
            node_id, kind, probe_index, rec.line, rec.value.prompt, output, rec.value.reference,
            score=score, passed=score >= gate, sim=sim, novelty=d, copied=d < COPY_THRESHOLD,
            tags=_tags(rec.value, {"prompt", "reference", "references", "facts"}), facts=facts, ref_logprob=ref_lp,
        ))
    return results


def item_facts(item: Any) -> list[list[str]]:
    """The item's own key facts, or cues derived from its references when it names none."""
    return item.facts or derived_facts(item.prompt, item.all_references())


def choice_prompt(prompt: str, choices: Sequence[str]) -> str:
    """The question with its options listed, so the model sees what it chooses among."""
    options = "\n".join(f"- {c}" for c in choices)
    return f"{prompt}\nOptions:\n{options}\nAnswer with one option."


def asked_as(options: str, prompt: str, choices: Sequence[str]) -> str:
    """The question a choice item is asked as: with its options listed, or (`options: hidden`) as written, so an
    item in the training data's own format asks exactly what was trained; a listing the training data never had
    can change what a fine-tuned model answers."""
    return prompt if options == "hidden" else choice_prompt(prompt, choices)


def calibrated_pick(scored: Sequence[tuple[float, int]], prior: Sequence[tuple[float, int]]) -> int:
    """The option whose log-likelihood rose most over the content-free question's (pointwise mutual information)."""
    return max(range(len(scored)), key=lambda i: scored[i][0] - prior[i][0])


def raw_pick(scored: Sequence[tuple[float, int]]) -> int:
    """The option with the best per-token log-likelihood."""
    return max(range(len(scored)), key=lambda i: scored[i][0] / max(scored[i][1], 1))


def score_choices(
    node_id: str, probe_index: int, kind: str, records: Sequence[Record[Any]],
    logprobs: Sequence[Sequence[tuple[float, int]]], priors: Sequence[Sequence[tuple[float, int]]],
    scoring: str = "calibrated",
) -> list[ItemResult]:
    """Score 1 when the pick (calibrated by default) is the answer; both picks and every option's numbers are kept."""
    results = []
    for rec, per_choice, prior in zip(records, logprobs, priors):
        raw, calibrated = raw_pick(per_choice), calibrated_pick(per_choice, prior)
        pick = calibrated if scoring == "calibrated" else raw
        correct = pick == rec.value.answer
        options = [{"text": c, "logprob": lp, "tokens": n, "prior_logprob": plp}
                   for c, (lp, n), (plp, _) in zip(rec.value.choices, per_choice, prior)]
        results.append(ItemResult(
            node_id, kind, probe_index, rec.line, rec.value.prompt, rec.value.choices[pick],
            rec.value.choices[rec.value.answer], score=float(correct), passed=correct,
            logprob=per_choice[pick][0] / max(per_choice[pick][1], 1),
            tags=_tags(rec.value, {"prompt", "choices", "answer"}), options=options,
            raw_correct=raw == rec.value.answer, calibrated_correct=calibrated == rec.value.answer, scoring=scoring,
        ))
    return results
