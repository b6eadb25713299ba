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
from probes.kinds import NEUTRAL, choice_prompt, score_choices, score_paraphrases
from probes.lm import choice_logprobs, greedy_answers
from probes.lmeval_bridge import run_lmeval
from probes.results import aggregate
from probes.scoring import fact_recall, novelty, paraphrase_score
from probes.similarity import cosine_pairs
from probes.sweep import probe_nodes
from warehouse.db import Warehouse

TRAIN = ["Fogwhisperfrost is the trembling hush of an early forest morning, when fog muffles every sound."]
REFERENCE = "A quiet, cold, misty morning in the woods where everything is so still it almost shivers."


@pytest.fixture(scope="module")
def tiny():
    loaded = load_base(TINY)
    return loaded.model.eval(), loaded.tokenizer


def test_reciting_scores_zero_and_facts_carry_the_meaning() -> None:
    copy_d = novelty(TRAIN[0], TRAIN)
    para_d = novelty("In the woods at daybreak, mist swallows every noise and the air seems to shiver.", TRAIN)
    assert copy_d == 0.0 and para_d > 0.35
    assert paraphrase_score(0.95, 1.0, copy_d) == 0.0  # a recited training answer is no paraphrase, however close
    facts = [["mist", "fog"], ["quiet", "silent", "still", "hush"], ["cold", "frost", "ice", "chill"]]
    assert fact_recall("Misty and utterly silent.", facts) == pytest.approx(2 / 3)  # 'mist' starts 'misty'
    assert fact_recall("A hot, loud, bustling noon.", facts) == 0.0
    assert fact_recall("anything", []) is None
    assert paraphrase_score(0.5, 2 / 3, para_d) == pytest.approx(0.6 * 2 / 3 + 0.4 * 0.5)
    assert paraphrase_score(0.5, None, para_d) == pytest.approx(0.5)  # no facts: the cosine alone


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
    assert copied.copied and copied.novelty == 0.0 and copied.score == 0.0 and copied.sim > 0.4
    assert not unrelated.copied and unrelated.score < 0.3 and not unrelated.passed
    assert copied.item == 7 and copied.tags == {"context": "dawn"} and copied.reference == REFERENCE


def test_choice_scores_raw_and_calibrated_and_keeps_every_option() -> None:
    rec = Record("c.jsonl", 2, ChoiceItem(prompt="Which?", choices=["long right answer", "short", "other"], answer=0))
    scored = [(-10.0, 10), (-3.0, 2), (-9.0, 3)]  # per token: -1.0 (best raw), -1.5, -3.0
    prior = [(-4.0, 10), (-1.0, 2), (-20.0, 3)]  # rise over the content-free question: -6, -2, +11 (best calibrated)
    (raw,) = score_choices("n", 1, "transfer", [rec], [scored], [prior], scoring="raw")
    assert raw.passed and raw.score == 1.0 and raw.output == "long right answer" and raw.logprob == -1.0
    (cal,) = score_choices("n", 1, "transfer", [rec], [scored], [prior])
    assert not cal.passed and cal.output == "other" and cal.scoring == "calibrated"
    assert cal.raw_correct is True and cal.calibrated_correct is False
    assert cal.options[2] == {"text": "other", "logprob": -9.0, "tokens": 3, "prior_logprob": -20.0}


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
    results = probe_nodes(model, tok, cur, {"a": [(0, 1), (1, 1)], "b": None})
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
    _, sums = wh.query("SELECT count(*) FROM probe_results WHERE probe_kind = 'transfer' AND json_array_length(options) = 3 "
                       "AND raw_correct IS NOT NULL AND calibrated_correct IS NOT NULL")
    assert sums == [(3,)]
    _, refs = wh.query("SELECT count(ref_logprob) FROM probe_results WHERE probe_kind = 'paraphrase'")
    assert refs == [(4,)]


def test_calibrated_score_is_the_hand_computed_difference(tiny, tmp_path: Path) -> None:
    model, tok = tiny
    cur = load_curriculum(tiny_graph(tmp_path))
    (result, *_) = probe_nodes(model, tok, cur, {"b": [(1, 1)]})["b"]
    rec = cur.probe_items["b"][1][0].value
    asked = [_full_sequence_logprob(model, tok, choice_prompt(rec.prompt, rec.choices), c) for c in rec.choices]
    prior = [_full_sequence_logprob(model, tok, choice_prompt(NEUTRAL, rec.choices), c) for c in rec.choices]
    rise = [a[0] - p[0] for a, p in zip(asked, prior)]
    for option, a, p in zip(result.options, asked, prior):
        assert option["logprob"] == pytest.approx(a[0], abs=1e-3) and option["prior_logprob"] == pytest.approx(p[0], abs=1e-3)
    assert result.output == rec.choices[max(range(len(rise)), key=rise.__getitem__)]


def test_lmeval_local_task_rows(tiny, tmp_path: Path) -> None:
    model, tok = tiny
    cur = load_curriculum(tiny_graph(tmp_path))
    results = run_lmeval(model, tok, "a", 1, records=cur.probe_items["a"][1])
    assert [r.item for r in results] == [1, 2]
    assert all(r.probe_kind == "lmeval" and r.score in (0.0, 1.0) and r.output in
               ("a still lake at dawn", "a loud market", "a hot desert") for r in results)
    assert all(r.reference == "a still lake at dawn" for r in results)
