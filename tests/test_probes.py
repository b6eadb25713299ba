"""Probe scoring on fixed strings, batching that matches one-at-a-time, per-item rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from curriculum.models.chat import prompt_ids
from curriculum.loading.jsonl import Record
from curriculum.models.load import TINY, load_base
from curriculum.graph.spec import ANALOGY_OPEN_QUESTION, ANALOGY_QUESTION, ChoiceItem, ParaphraseItem
from curriculum.loading.validate import check_curriculum, load_curriculum
from helpers import probe_kinds_graph, tiny_graph
from probes.kinds import NEUTRAL, choice_prompt, score_choices, score_paraphrases
from probes.lm import choice_logprobs, greedy_answers
from probes.results import aggregate, evidence_of
from probes.scoring import fact_recall, novelty, paraphrase_score
from probes.similarity import cosine_pairs
from curriculum.policies.draws import pool_keys, regression_items
from probes import lmeval_bridge
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


def test_hidden_options_ask_the_question_as_written(tiny, tmp_path: Path) -> None:
    """`options: hidden` scores each option as the answer to the item's own prompt, no listing added, and its
    content-free question is the bare neutral one: what a model trained on the item's format is asked."""
    model, tok = tiny
    graph = tiny_graph(tmp_path)
    text = graph.read_text()
    graph.write_text(text.replace("{kind: transfer, items: b_choice.jsonl}",
                                  "{kind: transfer, items: b_choice.jsonl, options: hidden, scoring: raw}"))
    cur = load_curriculum(graph)
    (result, *_) = probe_nodes(model, tok, cur, {"b": [(1, 1)]})["b"]
    rec = cur.probe_items["b"][1][0].value
    asked = [_full_sequence_logprob(model, tok, rec.prompt, c) for c in rec.choices]
    prior = [_full_sequence_logprob(model, tok, NEUTRAL, c) for c in rec.choices]
    for option, a, p in zip(result.options, asked, prior):
        assert option["logprob"] == pytest.approx(a[0], abs=1e-3) and option["prior_logprob"] == pytest.approx(p[0], abs=1e-3)
    listed = _full_sequence_logprob(model, tok, choice_prompt(rec.prompt, rec.choices), rec.choices[0])
    assert abs(listed[0] - asked[0][0]) > 1e-2  # the listing would have changed the numbers
    per_token = [a[0] / max(a[1], 1) for a in asked]
    assert result.scoring == "raw" and result.output == rec.choices[max(range(len(per_token)), key=per_token.__getitem__)]


def test_hidden_options_are_for_choice_probes_only() -> None:
    from curriculum.graph.spec import ProbeSpec
    with pytest.raises(ValueError, match="options: hidden"):
        ProbeSpec(kind="paraphrase", items="p.jsonl", options="hidden")


@pytest.fixture(scope="module")
def kinds(tmp_path_factory: pytest.TempPathFactory):
    return load_curriculum(probe_kinds_graph(tmp_path_factory.mktemp("kinds")))


def test_lmeval_items_run_through_lm_evals_evaluator(tiny, kinds) -> None:
    """Each option's log-likelihood is lm-eval's: ours plus the same constant per question (lm-eval moves the
    newline that ends the assistant header into every continuation), and the row's pick is lm-eval's acc."""
    model, tok = tiny
    rows = probe_nodes(model, tok, kinds, {"k": [(0, 1), (0, 3)]})["k"]
    assert [(r.probe_kind, r.item) for r in rows] == [("lmeval", 1), ("lmeval", 3)]
    for row in rows:
        rec = next(r.value for r in kinds.probe_items["k"][0] if r.line == row.item)
        (ours,) = choice_logprobs(model, tok, [(choice_prompt(rec.prompt, rec.choices), rec.choices)])
        shift = [o["logprob"] - lp for o, (lp, _) in zip(row.options, ours)]
        assert max(shift) - min(shift) < 1e-3 and abs(shift[0]) > 1e-2  # lm-eval's numbers, not ours
        best = max(range(len(rec.choices)), key=lambda j: row.options[j]["logprob"])
        assert row.output == rec.choices[best] and row.reference == rec.choices[rec.answer]
        assert row.scoring == "acc" and row.score == row.tags["metrics"]["acc"] == float(best == rec.answer)
        assert set(row.tags["metrics"]) == {"acc", "acc_norm"} and row.tags["domain"] == "weather"


def test_lmeval_task_yaml_with_mapping_choices_and_sample(tiny, kinds) -> None:
    """An ARC-style task YAML kept with the curriculum (choices {text, label}, data relative to the YAML):
    `sample` docs are the node's items, and exactly the asked docs are scored."""
    model, tok = tiny
    assert sorted(k for k in pool_keys(kinds, "t") if k[0] == 0) == [(0, 1), (0, 2)]
    every = probe_nodes(model, tok, kinds, {"t": None})["t"]
    arc = [r for r in every if r.probe_index == 0]
    assert [r.item for r in arc] == [1, 2]  # sample: 2 of the file's 3 docs
    assert [r.reference for r in arc] == ["fog", "a drum"]  # the text of each doc's answerKey label
    assert all(r.output in {o["text"] for o in r.options} and len(r.options) == 3 for r in arc)
    assert arc[0].prompt.startswith("Question: What hides the hills at dawn?")
    (third,) = [r for r in probe_nodes(model, tok, kinds, {"t": [(0, 3)]})["t"]]
    assert third.item == 3 and third.reference == "a kettle"


def test_lmeval_generative_task_scores_exact_match(tiny, kinds, tmp_path: Path) -> None:
    model, tok = tiny
    every = probe_nodes(model, tok, kinds, {"t": None})["t"]
    gen = [r for r in every if r.probe_index == 1]
    assert [r.item for r in gen] == [1, 2] and all(r.scoring == "exact_match" for r in gen)
    ll = [r for r in every if r.probe_index == 2]  # output_type loglikelihood: the target's own log-likelihood
    assert [r.output for r in ll] == [" hush", " frost"] and all(r.logprob < 0 and r.score in (0.0, 1.0) for r in ll)
    assert [r.score for r in gen] == [float(r.output == r.reference) for r in gen] and gen[0].output
    # the model's own answer to doc 1, made the reference of the same question, must score 1
    data = kinds.path.parent / "tasks" / "gen.jsonl"
    data.write_text(data.read_text() + json.dumps({"question": "Name the quiet.", "answer": gen[0].output}) + "\n")
    (again,) = probe_nodes(model, tok, kinds, {"t": [(1, 3)]})["t"]
    assert again.output == gen[0].output and again.score == 1.0 and again.passed


def test_task_index_is_built_once_per_run(tiny, kinds, monkeypatch: pytest.MonkeyPatch) -> None:
    import lm_eval.tasks

    built = []

    class Counted(lm_eval.tasks.TaskManager):
        def __init__(self, *args, **kwargs):
            built.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(lm_eval.tasks, "TaskManager", Counted)
    lmeval_bridge.task_manager.cache_clear()
    model, tok = tiny
    for stage in range(3):  # three stages' sweeps: items and task YAMLs
        probe_nodes(model, tok, kinds, {"k": regression_items(kinds, "k", [(0, 1), (0, 2), (0, 3)], stage),
                                        "t": [(0, 1), (1, 2)]})
    assert built == [{"include_defaults": False}]  # the installed-task index (seconds) was never needed
    lmeval_bridge.task_manager.cache_clear()


def test_lmeval_sample_bounds_regression_sweeps(tiny, kinds) -> None:
    model, tok = tiny
    keys = regression_items(kinds, "k", [(0, 1), (0, 2), (0, 3)], stage=1)
    assert len(keys) == 2  # sample: 2
    rows = probe_nodes(model, tok, kinds, {"k": keys})["k"]
    assert sorted(r.item for r in rows) == sorted(line for _, line in keys)


def test_analogy_choice_is_calibrated_and_generative_is_scored_as_meaning(tiny, kinds) -> None:
    model, tok = tiny
    rows = probe_nodes(model, tok, kinds, {"k": [(1, 1), (2, 1)]})["k"]
    (choice,) = [r for r in rows if r.probe_kind == "analogy"]
    (open_,) = [r for r in rows if r.probe_kind == "analogy_generative"]
    rec = kinds.probe_items["k"][1][0].value
    assert choice.prompt == f"{rec.situation}\n{ANALOGY_QUESTION}" and choice.scoring == "calibrated"
    rise = [o["logprob"] - o["prior_logprob"] for o in choice.options]
    assert choice.output == rec.choices[max(range(len(rise)), key=rise.__getitem__)]
    assert choice.tags == {"domain": "kitchen"}  # situation and question are in the prompt, not in tags
    assert open_.sim is not None and open_.novelty is not None and open_.prompt.endswith(ANALOGY_OPEN_QUESTION)
    assert evidence_of([choice], 1).binary and not evidence_of([open_], 1).binary  # meaning, not right/wrong


def test_probe_kind_inputs_are_checked(tmp_path: Path) -> None:
    graph = probe_kinds_graph(tmp_path)
    (tmp_path / "k_analogy.jsonl").write_text(json.dumps({"prompt": "p", "choices": ["a", "b"], "answer": 0}) + "\n")
    graph.write_text(graph.read_text().replace("tasks/arc.yaml", "tasks/missing.yaml"))
    loaded, problems = check_curriculum(graph)
    assert loaded is None
    said = sorted(str(p) for p in problems)
    assert any("k_analogy.jsonl:1:1" in p and "gives 'situation'" in p for p in said), said
    assert any("graph.yaml:" in p and "task file 'tasks/missing.yaml' not found" in p for p in said), said


def test_a_task_whose_json_file_holds_json_lines_validates_and_runs(tiny, tmp_path: Path) -> None:
    """lm-eval reads a task's data with `datasets`, which reads JSON lines in a `.json` file: validation asks the
    same reader, so the task validates, and it runs through lm-eval's evaluator."""
    model, tok = tiny
    probe_kinds_graph(tmp_path)
    tasks = tmp_path / "tasks"
    (tasks / "arc.jsonl").rename(tasks / "arc.json")
    (tasks / "arc.yaml").write_text((tasks / "arc.yaml").read_text().replace("arc.jsonl", "arc.json"))
    cur = load_curriculum(tmp_path / "graph.yaml")
    arc = [r for r in probe_nodes(model, tok, cur, {"t": None})["t"] if r.probe_index == 0]
    assert [r.item for r in arc] == [1, 2] and all(len(r.options) == 3 for r in arc)
