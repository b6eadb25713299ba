"""Probe scoring on fixed strings, batching that matches one-at-a-time, per-item rows."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from curriculum.chat import prompt_ids
from curriculum.jsonl import Record
from curriculum.models import TINY, load_base
from curriculum.spec import ChoiceItem, ParaphraseItem
from curriculum.validate import load_curriculum
from helpers import tiny_graph
from probes.kinds import score_choices, score_paraphrases
from probes.lm import choice_logprobs, greedy_answers
from probes.lmeval_bridge import run_lmeval
from probes.results import aggregate
from probes.scoring import novelty, parascore
from probes.similarity import cosine_pairs
from probes.sweep import probe_nodes
from warehouse.db import Warehouse

TRAIN = ["Fogwhisperfrost is the trembling hush of an early forest morning, when fog muffles every sound."]
REFERENCE = "A quiet, cold, misty morning in the woods where everything is so still it almost shivers."


@pytest.fixture(scope="module")
def tiny():
    loaded = load_base(TINY)
    return loaded.model.eval(), loaded.tokenizer


def test_copy_scores_below_paraphrase_of_equal_similarity() -> None:
    copy_d = novelty(TRAIN[0], TRAIN)
    para_d = novelty("In the woods at daybreak, mist swallows every noise and the air seems to shiver.", TRAIN)
    assert copy_d == 0.0 and para_d > 0.35
    assert parascore(0.8, copy_d) < parascore(0.8, para_d)
    assert parascore(0.8, copy_d) == pytest.approx(0.75)
    assert parascore(0.8, para_d) == pytest.approx(0.8 + 0.05 * 0.35)


def test_meaning_similarity_separates_paraphrase_from_unrelated() -> None:
    para, unrelated = cosine_pairs(
        ["A still, chilly, foggy dawn in the forest, so silent it seems to tremble.", "Interest rates rose by half a point."],
        [REFERENCE, REFERENCE],
    )
    print(f"sim paraphrase {para:.3f}, unrelated {unrelated:.3f}")
    assert para > 0.5 and unrelated < 0.2


def test_paraphrase_rows_flag_parroting() -> None:
    rec = Record("p.jsonl", 7, ParaphraseItem(prompt="Explain it.", reference=REFERENCE, context="dawn"))
    outputs = [TRAIN[0], "Interest rates rose by half a point."]
    copied, unrelated = score_paraphrases("n", 0, [rec, rec], outputs, TRAIN, gate=0.6)
    assert copied.copied and copied.novelty == 0.0 and copied.score == pytest.approx(copied.sim - 0.05)
    assert not unrelated.copied and unrelated.score < 0.3 and not unrelated.passed
    assert copied.item == 7 and copied.tags == {"context": "dawn"} and copied.reference == REFERENCE


def test_choice_picks_best_per_token_likelihood() -> None:
    rec = Record("c.jsonl", 2, ChoiceItem(prompt="Which?", choices=["long right answer", "short", "other"], answer=0))
    # option 0: -10 over 10 tokens (-1.0/token) beats option 1: -3 over 2 tokens (-1.5/token)
    (hit,) = score_choices("n", 1, "transfer", [rec], [[(-10.0, 10), (-3.0, 2), (-9.0, 3)]])
    assert hit.passed and hit.score == 1.0 and hit.output == "long right answer" and hit.logprob == -1.0
    (miss,) = score_choices("n", 1, "transfer", [rec], [[(-30.0, 10), (-3.0, 2), (-9.0, 3)]])
    assert not miss.passed and miss.score == 0.0 and miss.output == "short"


def _full_sequence_logprob(model, tok, prompt: str, option: str) -> tuple[float, int]:
    head = prompt_ids(tok, prompt)
    tail = tok(option, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([head + tail])).logits[0]
    lp = torch.log_softmax(logits[len(head) - 1 : -1].float(), -1).gather(1, torch.tensor(tail)[:, None])
    return lp.sum().item(), len(tail)


def test_shared_prefix_batched_loglikelihoods_equal_full_sequences(tiny) -> None:
    model, tok = tiny
    questions = [("Which fits?", ["a still lake at dawn", "no"]),
                 ("Another question, longer than the first one?", ["no", "a loud market full of people shouting", "x"]),
                 ("Q", ["one option only, but long enough to matter here"])]
    batched = choice_logprobs(model, tok, questions, batch_size=8)
    for (prompt, options), got in zip(questions, batched):
        for option, (total, n) in zip(options, got):
            want, m = _full_sequence_logprob(model, tok, prompt, option)
            assert n == m and total == pytest.approx(want, abs=1e-3)


def test_batched_generation_equals_one_at_a_time(tiny) -> None:
    model, tok = tiny
    prompts = ["Hi", "Tell me about a quiet lake at dawn, please.", "Why?"]
    batched = greedy_answers(model, tok, prompts, max_new_tokens=8, batch_size=8)
    single = [greedy_answers(model, tok, [p], max_new_tokens=8)[0] for p in prompts]
    assert batched == single


def test_probe_nodes_gives_one_row_per_item_and_samples_regression(tiny, tmp_path: Path) -> None:
    model, tok = tiny
    cur = load_curriculum(tiny_graph(tmp_path))
    results = probe_nodes(model, tok, cur, ["a", "b"], sampled=["a"], max_new_tokens=8)
    assert [(r.probe_kind, r.item) for r in results["a"]] == [("paraphrase", 1), ("transfer", 1)]
    assert len(results["b"]) == 3 + 2
    for r in results["b"]:
        assert r.prompt and r.reference and isinstance(r.passed, bool)
        assert (r.sim is not None) == (r.probe_kind == "paraphrase")
    assert 0.0 <= aggregate(results["b"][3:]) <= 1.0
    wh = Warehouse(tmp_path / "w.duckdb")
    rows = [dict(r.row(), run_id="r", stage=0) for rs in results.values() for r in rs]
    wh.write("probe_results", rows)
    _, got = wh.query("SELECT node_id, count(*), count(output) FROM probe_results GROUP BY 1 ORDER BY 1")
    assert got == [("a", 2, 2), ("b", 5, 5)]
    _, tags = wh.query("SELECT DISTINCT tags->>'context' FROM probe_results WHERE probe_kind = 'paraphrase'")
    assert tags == [("calm",)]


def test_lmeval_local_task_rows(tiny, tmp_path: Path) -> None:
    model, tok = tiny
    cur = load_curriculum(tiny_graph(tmp_path))
    results = run_lmeval(model, tok, "a", 1, records=cur.probe_items["a"][1])
    assert [r.item for r in results] == [1, 2]
    assert all(r.probe_kind == "lmeval" and r.score in (0.0, 1.0) and r.output in
               ("a still lake at dawn", "a loud market", "a hot desert") for r in results)
    assert all(r.reference == "a still lake at dawn" for r in results)
