"""HyperBridge (seed 004): talk to a trained run — expand hyperwords into plain language, or
compress a plain phrase into the hyperword the run taught."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from peft import PeftModel

from curriculum.training.integrity import check
from curriculum.models.load import load_base
from curriculum.models.tokens import saved_plan
from probes.kinds import choice_prompt
from probes.lm import choice_logprobs, greedy_answers

EXPAND = "Rewrite this in plain language, explaining every invented compound word in it:\n{text}"
COMPRESS = "{text}. Which hyperword names this?"
NEUTRAL = "A scene"


def bridge(base: str, adapter: Path | None, text: str, *, compress: bool = False, words: Sequence[str] = (),
           max_new_tokens: int = 80) -> str:
    """The model with the run's adapter answers the expand (or compress) request.

    Compressing with the run's lexicon picks the hyperword the model finds most likely (per-token
    log-likelihood, as the transfer probes do): a 135M model asked to *write* the word tends to
    describe the scene instead. Without a lexicon, and for expanding, it answers greedily.
    """
    if adapter is not None:
        check(adapter)  # a damaged adapter: one line naming the file, not a safetensors traceback
    loaded = load_base(base, tokens=saved_plan(adapter))  # a stage with single-token hyperwords brings them
    model = (loaded.model if adapter is None else PeftModel.from_pretrained(loaded.model, str(adapter))).eval()
    prompt = (COMPRESS if compress else EXPAND).format(text=text)
    if compress and words:
        # contextual calibration (Zhao et al. 2021): a tuned model favours the words it saw last whatever
        # the scene, so each word's log-likelihood is taken relative to the same question about no scene
        neutral = COMPRESS.format(text=NEUTRAL)
        scored, prior = choice_logprobs(model, loaded.tokenizer, [(choice_prompt(p, words), words) for p in (prompt, neutral)])
        best = max(range(len(words)), key=lambda i: scored[i][0] - prior[i][0])
        return words[best]
    return greedy_answers(model, loaded.tokenizer, [prompt], max_new_tokens=max_new_tokens)[0]
