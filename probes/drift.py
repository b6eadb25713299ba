"""Drift of general ability: the base model's own answers to neutral prompts, and how likely an adapter finds them.

The prompts (general knowledge, everyday instructions; none names a hyperword or its parts) ship with the
product in probes/data/drift_prompts.jsonl. At baseline the base model answers them greedily, once per run;
after each stage the adapted model only reads those answers (teacher-forced, batched, no generation), so a
stage's drift costs one forward pass over them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from curriculum.policies.drift import Drift
from curriculum.graph.spec import DriftConfig
from probes.lm import DECODING, choice_logprobs, greedy_answers

PROMPTS_FILE = "drift_prompts.jsonl"


@dataclass(frozen=True)
class BaseAnswer:
    """One neutral prompt, the base model's greedy answer, and its likelihood under the base model."""

    item: int  # line of the prompt in the shipped file
    prompt: str
    answer: str
    tokens: int
    logprob: float | None  # mean per-token log-likelihood under the base model; None: an empty answer, not scored


def shipped_prompts() -> list[tuple[int, str]]:
    """(line, prompt) of every neutral prompt shipped with the product."""
    text = resources.files("probes").joinpath("data", PROMPTS_FILE).read_text(encoding="utf-8")
    return [(i, json.loads(line)["prompt"]) for i, line in enumerate(text.splitlines(), 1) if line.strip()]


def sample(prompts: Sequence[tuple[int, str]], n: int) -> list[tuple[int, str]]:
    """`n` prompts spread evenly over the file (it alternates knowledge and instructions), the same every run."""
    n = min(n, len(prompts))
    return [prompts[i * len(prompts) // n] for i in range(n)]


def answer_logprobs(model, tokenizer, pairs: Sequence[tuple[str, str]]) -> list[tuple[float, int]]:
    """(mean per-token log-likelihood, tokens) of each answer after its chat prompt, batched, teacher-forced."""
    scored = choice_logprobs(model, tokenizer, [(prompt, [answer]) for prompt, answer in pairs])
    return [(total / n, n) for (total, n), in scored]


def base_answers(model, tokenizer, cfg: DriftConfig) -> list[BaseAnswer]:
    """The base model's greedy answers to the configured sample of prompts, each with its own likelihood."""
    chosen = sample(shipped_prompts(), cfg.prompts)
    outputs = greedy_answers(model, tokenizer, [p for _, p in chosen], cfg.answer_tokens,
                             no_repeat_ngram_size=DECODING["no_repeat_ngram_size"])
    scorable = [i for i, out in enumerate(outputs) if tokenizer(out, add_special_tokens=False)["input_ids"]]
    scored = dict(zip(scorable, answer_logprobs(model, tokenizer, [(chosen[i][1], outputs[i]) for i in scorable])))
    return [BaseAnswer(line, prompt, out, scored[i][1] if i in scored else 0, scored[i][0] if i in scored else None)
            for i, ((line, prompt), out) in enumerate(zip(chosen, outputs))]


def measure(model, tokenizer, answers: Sequence[BaseAnswer]) -> tuple[Drift, list[tuple[int, float]]]:
    """The adapted model's drift on the base's answers, and each scored prompt's (item, mean log-likelihood)."""
    scored = [a for a in answers if a.logprob is not None]
    adapted = [lp for lp, _ in answer_logprobs(model, tokenizer, [(a.prompt, a.answer) for a in scored])] if scored else []
    return Drift.of(adapted, [a.logprob for a in scored if a.logprob is not None]), [(a.item, lp) for a, lp in zip(scored, adapted)]
