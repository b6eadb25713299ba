"""Single-token hyperwords, measured: compression of the bundled curriculum's text, training
speed, and probe scores after the same budget for compositional / gloss / random rows vs no
new tokens. One run, one table.

Budget: one stage on the definition data of BENCH_TOKEN_WORDS hyperwords (same seed, epochs,
lr for every variant), then the probes of those definition nodes and of the choice nodes
about the same words. Last line: one JSON object. Run: .venv/bin/python bench/tokens.py
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/*.py would shadow the project's packages when run as scripts
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import json
import os
import tempfile
import time

from curriculum.models.bases import stay_offline

stay_offline()

from rich.console import Console
from rich.table import Table

from curriculum.models.chat import pair_ids
from curriculum.models.load import load_base
from curriculum.graph.spec import NewTokens
from curriculum.models.tokens import token_plan
from curriculum.training.batches import examples_from_records
from curriculum.training.train import train_stage
from curriculum.loading.validate import LoadedCurriculum, load_curriculum
from probes.prober import Prober
from probes.results import aggregate

ROOT = Path(__file__).resolve().parent.parent
WORDS = os.environ.get("BENCH_TOKEN_WORDS", "fogwhisperfrost,emberlull,stoneheavywait,rainhushhome").split(",")
EPOCHS = int(os.environ.get("BENCH_TOKEN_EPOCHS", 4))
VARIANTS = ("none", "compositional", "gloss", "random")


def all_text(cur: LoadedCurriculum) -> list[str]:
    """Every prompt, answer, reference and choice of the bundled curriculum."""
    texts = [t for recs in cur.examples.values() for r in recs for t in (r.value.prompt, r.value.answer)]
    for per_node in cur.probe_items.values():
        for recs in per_node:
            for r in recs:
                texts += [r.value.prompt, *getattr(r.value, "choices", []), getattr(r.value, "reference", "")]
    return [t for t in texts if t]


def plan_for(cur: LoadedCurriculum, init: str) -> dict | None:
    if init == "none":
        return None
    spec = cur.spec.model_copy(update={"model": cur.spec.model.model_copy(update={"new_tokens": NewTokens(init=init)})})
    return token_plan(spec)


def count_tokens(tokenizer, cur: LoadedCurriculum) -> tuple[int, int]:
    """(tokens of the raw text, tokens of the chat-formatted training pairs)."""
    raw = sum(len(tokenizer.encode(t, add_special_tokens=False)) for t in all_text(cur))
    pairs = sum(len(pair_ids(tokenizer, r.value.prompt, r.value.answer)[0])
                for recs in cur.examples.values() for r in recs)
    return raw, pairs


def run_variant(cur: LoadedCurriculum, init: str, out: Path, nodes: list[str], probed: list[str]) -> dict:
    plan = plan_for(cur, init)
    tokenizer = load_base(cur.spec.model.base, tokens=plan).tokenizer
    raw, pairs = count_tokens(tokenizer, cur)
    examples = [ex for n in nodes for ex in examples_from_records(cur.examples[n])]
    cfg = cur.spec.train_config(nodes[0]).model_copy(update={"epochs": EPOCHS, "seed": 0})
    started = time.perf_counter()
    result = train_stage(cur.spec.model.base, None, examples, cur.spec.model.lora, cfg, out, progress=False, tokens=plan)
    stage_s = time.perf_counter() - started
    results = Prober(cur.spec.model.base, plan).probe(cur, out, {n: None for n in probed})
    scores = {n: aggregate(r) for n, r in results.items() if r}
    para = [scores[n] for n in probed if cur.spec.nodes[n].probes[0].kind == "paraphrase"]
    choice = [scores[n] for n in probed if cur.spec.nodes[n].probes[0].kind != "paraphrase"]
    return {"init": init, "text_tokens": raw, "pair_tokens": pairs, "train_tokens": result.tokens,
            "tok_per_s": result.tokens_per_s, "stage_s": stage_s, "train_loss": result.train_loss,
            "paraphrase": sum(para) / len(para), "choice": sum(choice) / len(choice),
            "score": sum(scores.values()) / len(scores)}


def main() -> None:
    cur = load_curriculum(ROOT / "graphs" / "hyperwords.yaml")
    nodes = [f"{w}.definition" for w in WORDS]
    probed = [n for n, node in cur.spec.nodes.items()
              if node.entered_by is None and any(n.startswith(w + ".") for w in WORDS)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for init in VARIANTS:
            rows.append(run_variant(cur, init, Path(tmp) / init, nodes, probed))
    by = {r["init"]: r for r in rows}
    none = by["none"]
    table = Table(title=f"single-token hyperwords: {len(nodes)} definition nodes trained {EPOCHS} epochs, "
                        f"{len(probed)} nodes probed")
    for col in ("init", "text tokens", "train tokens", "tok/s", "stage s", "loss", "paraphrase", "choice", "score"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["init"], str(r["text_tokens"]), str(r["train_tokens"]), f"{r['tok_per_s']:.0f}",
                      f"{r['stage_s']:.1f}", f"{r['train_loss']:.3f}", f"{r['paraphrase']:.3f}", f"{r['choice']:.3f}",
                      f"{r['score']:.3f}")
    Console(width=130).print(table)
    comp = by["compositional"]
    figures = {
        "compression_ratio": round(none["text_tokens"] / comp["text_tokens"], 4),
        "pair_compression_ratio": round(none["pair_tokens"] / comp["pair_tokens"], 4),
        "train_tokens_ratio": round(comp["train_tokens"] / none["train_tokens"], 4),
        "stage_time_ratio": round(comp["stage_s"] / none["stage_s"], 4),
        "tok_per_s_none": round(none["tok_per_s"], 1), "tok_per_s_compositional": round(comp["tok_per_s"], 1),
        **{f"score_{r['init']}": round(r["score"], 4) for r in rows},
        "score_compositional_minus_none": round(comp["score"] - none["score"], 4),
        "score_compositional_minus_random": round(comp["score"] - by["random"]["score"], 4),
        "score_gloss_minus_none": round(by["gloss"]["score"] - none["score"], 4),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
