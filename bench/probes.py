"""Probe speed on multiple-choice items (the regression sweep's workhorse), one run:
ours (`probes.lm.choice_logprobs`: batched, the shared prompt run once per question) vs a
naive one-item-one-option loop, vs `lm_eval.simple_evaluate` on the same items, vs a
hand-written batched torch loop over full sequences. All must pick the same options.

Model: the bundled SmolLM2-135M. Items: the bundled graph's choice items, made distinct and
repeated to N_ITEMS. Last line: one JSON object. Run: .venv/bin/python bench/probes.py
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/*.py would shadow the project's packages when run as scripts
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import json
import os
import time

from curriculum.models.bases import stay_offline

stay_offline()

import torch

from curriculum.models.chat import prompt_ids
from curriculum.loading.jsonl import Record
from curriculum.models.load import BUNDLED, load_base
from curriculum.loading.validate import load_curriculum
from probes.kinds import choice_prompt, score_choices
from probes.lm import choice_logprobs
from probes.lmeval_bridge import items_task

ROOT = Path(__file__).resolve().parent.parent
N_ITEMS = int(os.environ.get("BENCH_PROBE_ITEMS", 60))


def choice_items() -> list[Record]:
    cur = load_curriculum(ROOT / "graphs" / "hyperwords.yaml")
    base = [r for node, per in cur.probe_items.items() for spec, recs in zip(cur.spec.nodes[node].probes, per)
            if spec.kind == "transfer" for r in recs]
    # distinct prompts, so no side can skip work by caching repeated requests
    return [Record(r.file, r.line, r.value.model_copy(update={"prompt": f"(case {i}) {r.value.prompt}"}))
            for i, r in ((i, base[i % len(base)]) for i in range(N_ITEMS))]


def pairs_of(items: list[Record]) -> list[tuple[str, str]]:
    return [(choice_prompt(r.value.prompt, r.value.choices), c) for r in items for c in r.value.choices]


def split(items: list[Record], flat: list) -> list[list]:
    out, at = [], 0
    for r in items:
        out.append(flat[at : at + len(r.value.choices)])
        at += len(r.value.choices)
    return out


def ours(model, tok, items):
    questions = [(choice_prompt(r.value.prompt, r.value.choices), r.value.choices) for r in items]
    scored = choice_logprobs(model, tok, questions)
    return score_choices("bench", 0, "transfer", items, scored, scored, scoring="raw")  # speed only: no prior pass


def naive(model, tok, items):
    """One forward per (item, option), no batching: what a first script does."""
    scored = []
    for prompt, option in pairs_of(items):
        head = prompt_ids(tok, prompt)
        tail = tok(option, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([head + tail])).logits[0]
        lp = torch.log_softmax(logits[len(head) - 1 : -1].float(), -1).gather(1, torch.tensor(tail)[:, None]).sum().item()
        scored.append((lp, len(tail)))
    per_item = split(items, scored)
    return score_choices("bench", 0, "transfer", items, per_item, per_item, scoring="raw")


@torch.no_grad()
def hand_loop(model, tok, items, batch_size: int = 32):
    """The practical limit: pre-tokenised, length-sorted, batched, nothing else."""
    seqs = []
    for prompt, option in pairs_of(items):
        head = prompt_ids(tok, prompt)
        seqs.append((head + tok(option, add_special_tokens=False)["input_ids"], len(head)))
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i][0]))
    out = [None] * len(seqs)
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        width = len(seqs[idx[0]][0])
        ids = torch.full((len(idx), width), tok.pad_token_id)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            ids[row, : len(seqs[i][0])] = torch.tensor(seqs[i][0])
            mask[row, : len(seqs[i][0])] = 1
        logits = model(input_ids=ids, attention_mask=mask).logits
        for row, i in enumerate(idx):
            toks, head = seqs[i]
            lp = torch.log_softmax(logits[row, head - 1 : len(toks) - 1].float(), -1)
            out[i] = (lp.gather(1, torch.tensor(toks[head:])[:, None]).sum().item(), len(toks) - head)
    per_item = split(items, out)
    return score_choices("bench", 0, "transfer", items, per_item, per_item, scoring="raw")


def simple_evaluate(model, tok, items):
    """lm-eval's front door, as a user calls it, on the same items as a custom task."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=32)
    out = lm_eval.simple_evaluate(model=lm, tasks=[items_task("bench_choices", items)], log_samples=True,
                                  apply_chat_template=True, verbosity="ERROR")
    return out["samples"]["bench_choices"]


def timed(fn, *args) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t0, result


def main() -> None:
    loaded = load_base(BUNDLED)
    model, tok = loaded.model.eval(), loaded.tokenizer
    items = choice_items()
    n_pairs = len(pairs_of(items))
    ours(model, tok, items[:4])  # warm-up
    seconds: dict[str, float] = {}
    ours_result: list = []  # "ours" runs first: the others must pick what it picked
    for name, fn in (("ours", ours), ("hand_loop", hand_loop), ("naive", naive), ("simple_evaluate", simple_evaluate)):
        seconds[name], result = timed(fn, model, tok, items)
        if name in ("hand_loop", "naive"):
            picks = [r.output for r in result]
            assert picks == [r.output for r in ours_result], f"{name} disagrees with ours"
        if name == "ours":
            ours_result = result
        print(f"{name:16s} {len(items)} items ({n_pairs} options): {seconds[name]:6.2f} s  "
              f"{len(items) / seconds[name]:6.1f} items/s", flush=True)
    figures = {
        "vs_naive": round(seconds["naive"] / seconds["ours"], 2),
        "vs_simple_evaluate": round(seconds["simple_evaluate"] / seconds["ours"], 2),
        "time_over_hand_loop": round(seconds["ours"] / seconds["hand_loop"], 3),
        "items_per_s": round(len(items) / seconds["ours"], 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
