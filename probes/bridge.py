"""HyperBridge (seed 004): talk to a trained run — expand hyperwords into plain language, or
compress a plain phrase into the hyperword the run taught."""

from __future__ import annotations

from pathlib import Path

from peft import PeftModel

from curriculum.models import load_base
from curriculum.tokens import saved_plan
from probes.lm import greedy_answers

EXPAND = "Rewrite this in plain language, explaining every invented compound word in it:\n{text}"
COMPRESS = "Which single invented compound word that you know names this scene? Answer with the word.\n{text}"


def bridge(base: str, adapter: Path | None, text: str, *, compress: bool = False, max_new_tokens: int = 80) -> str:
    """The model with the run's adapter answers the expand (or compress) request, greedily."""
    loaded = load_base(base, tokens=saved_plan(adapter))  # a stage with single-token hyperwords brings them
    model = loaded.model if adapter is None else PeftModel.from_pretrained(loaded.model, str(adapter))
    prompt = (COMPRESS if compress else EXPAND).format(text=text)
    return greedy_answers(model.eval(), loaded.tokenizer, [prompt], max_new_tokens=max_new_tokens)[0]
