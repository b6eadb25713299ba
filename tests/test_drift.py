"""Drift of general ability on the tiny model: zero on the base and on an untrained LoRA, moved by training,
its interval scipy's, one row per stage, the base's answers reused on resume, and the curriculum option."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from scipy import stats

import probes.drift
from curriculum.models.chat import Example
from curriculum.policies.drift import Drift
from curriculum.models.load import TINY
from curriculum.graph.spec import DRIFT_PROMPTS, DriftConfig, LoraConfig, TrainConfig
from curriculum.training.train import train_stage
from curriculum.loading.validate import check_curriculum
from helpers import tiny_graph
from probes.drift import base_answers, measure, sample, shipped_prompts
from probes.prober import Prober
from warehouse.db import Warehouse

ADAPTED = [-1.20, -0.95, -2.10, -1.55, -0.80, -1.75, -1.30, -2.40]
BASE = [-1.00, -0.90, -1.60, -1.50, -0.85, -1.20, -1.10, -1.90]


def test_interval_is_scipys_paired_t() -> None:
    drift = Drift.of(ADAPTED, BASE)
    paired = stats.ttest_rel(ADAPTED, BASE)
    assert drift.mean == pytest.approx(sum(a - b for a, b in zip(ADAPTED, BASE)) / len(BASE), abs=1e-12)
    assert drift.n == 8 and drift.sd == pytest.approx(stats.tstd([a - b for a, b in zip(ADAPTED, BASE)]), rel=1e-12)
    assert drift.interval() == pytest.approx(tuple(paired.confidence_interval(0.95)), rel=1e-9)
    one_sided = stats.ttest_rel(ADAPTED, BASE, alternative="less").confidence_interval(0.9)
    assert drift.upper(0.9) == pytest.approx(one_sided.high, rel=1e-9)
    row = drift.row()
    assert Drift.from_row(row) == drift and (row["drift_low"], row["drift_high"]) == drift.interval()
    assert Drift.of([-1.0, -2.0], [-0.5, -1.5]).interval() == (-0.5, -0.5)  # no spread: the point
    assert Drift.of([-1.0], [-0.5]).row()["drift_low"] is None  # one prompt: no interval
    assert not Drift.of([-9.0], [0.0]).beyond(0.5, 0.9)


def test_shipped_prompts_are_found_and_sampled_evenly() -> None:
    prompts = shipped_prompts()
    assert len(prompts) == DRIFT_PROMPTS and len({p for _, p in prompts}) == DRIFT_PROMPTS
    assert [line for line, _ in prompts] == list(range(1, DRIFT_PROMPTS + 1))
    chosen = sample(prompts, 32)
    assert len(chosen) == 32 and chosen == sample(prompts, 32) and chosen[0] == prompts[0]
    kinds = {json.loads(line)["kind"] for line in
             (Path(probes.drift.__file__).parent / "data" / probes.drift.PROMPTS_FILE).read_text().splitlines()}
    assert kinds == {"knowledge", "instruction"}
    assert {line % 2 for line, _ in chosen} == {0, 1}  # both kinds (they alternate in the file)
    lexicon = (Path(__file__).parent.parent / "graphs" / "hyperwords.yaml").read_text()
    words = {w for line in lexicon.splitlines() if "parts: [" in line for w in line.split("parts: [")[1].split("]")[0].split(", ")}
    assert words and not [p for _, p in prompts for w in words if w in p.casefold().split()]


def test_drift_is_zero_on_the_base_and_an_untrained_lora_and_moves_with_training(tmp_path: Path) -> None:
    prober = Prober(TINY)
    with prober.using(None) as (model, tok):
        answers = base_answers(model, tok, DriftConfig(prompts=8, answer_tokens=8))
    assert len(answers) == 8 and all(a.logprob is not None and a.tokens > 0 for a in answers)
    examples = [Example(f"What is glimmer {i}?", f"Glimmer {i} is the last gold light on water at dusk.") for i in range(8)]
    fast = TrainConfig(epochs=4, lr=5e-3, batch_size=4, max_length=64, warmup_ratio=0.0)
    untrained = train_stage(TINY, None, examples, LoraConfig(dropout=0.0), fast.model_copy(update={"lr": 0.0, "epochs": 1}),
                            tmp_path / "zero", progress=False)
    trained = train_stage(TINY, None, examples, LoraConfig(dropout=0.0), fast, tmp_path / "trained", progress=False)
    measured = {}
    for name, adapter in (("base", None), ("zero", untrained.adapter_dir), ("trained", trained.adapter_dir),
                          ("base again", None)):
        with prober.using(adapter) as (model, tok):
            measured[name], items = measure(model, tok, answers)
        assert [i for i, _ in items] == [a.item for a in answers]
    print({k: v.describe() for k, v in measured.items()})
    for name in ("base", "zero", "base again"):
        assert abs(measured[name].mean) < 1e-5 and measured[name].n == 8
    assert abs(measured["trained"].mean) > 0.05


def _runs(wh: Warehouse, sql: str) -> list[tuple]:
    return wh.query(sql)[1]


def test_drift_recorded_per_stage_reused_on_resume_and_gated(prefect_harness, tmp_path: Path, monkeypatch,
                                                             capsys) -> None:
    """A run stopped after its baseline resumes without generating; its stage's drift is recorded once, and a's
    `max_drift: 0` (any clear loss) discards the stage: a backs off, b is skipped, and replay lands there too."""
    from curriculum.policies.registry import make_policy
    from curriculum.loading.validate import load_curriculum
    from flows.curriculum_flow import curriculum, replay_state
    from warehouse.records import node_statuses

    graph = tiny_graph(tmp_path, "drift: {prompts: 6, answer_tokens: 8}\n")
    graph.write_text(graph.read_text().replace("  a:\n    layer: definition\n",
                                               "  a:\n    layer: definition\n    gate: {max_drift: 0.0}\n"))
    wh = Warehouse(tmp_path / "w.duckdb")
    kw = {"graph": str(graph), "warehouse": str(wh.path), "runs_dir": str(tmp_path / "runs")}
    monkeypatch.setenv("CURRICULUM_FAIL_AT", "stage:data")  # the run dies after its baseline, before stage 1
    with pytest.raises(ValueError, match="CURRICULUM_FAIL_AT"):
        curriculum(run_id="d", train_overrides={"max_steps": 4}, **kw)
    monkeypatch.delenv("CURRICULUM_FAIL_AT")
    answers = _runs(wh, "SELECT item, prompt, answer, tokens FROM drift_answers ORDER BY item")
    assert len(answers) == 6 and _runs(wh, "SELECT count(*) FROM drift_items WHERE stage = 0") == [(6,)]

    def no_generation(*args, **kwargs):
        raise AssertionError("a resumed run generated new base answers")

    monkeypatch.setattr(probes.drift, "greedy_answers", no_generation)
    curriculum(resume="d", **kw)
    assert _runs(wh, "SELECT item, prompt, answer, tokens FROM drift_answers ORDER BY item") == answers
    stages = _runs(wh, "SELECT stage, status, drift, drift_n, drift_low, drift_high FROM stages ORDER BY stage")
    assert [(s, status, n) for s, status, _, n, *_ in stages] == [(1, "discarded", 6)]
    (_, _, drift, _, low, high), = stages
    assert low <= drift <= high < 0  # training moved the model off the base's own answers
    per_stage = _runs(wh, "SELECT stage, count(*), avg(diff) FROM drift_per_prompt GROUP BY stage ORDER BY stage")
    assert [(s, n) for s, n, _ in per_stage] == [(1, 6)] and math.isclose(per_stage[0][2], drift, abs_tol=1e-9)
    _, decisions = wh.query("SELECT stage, node_id, action, reason FROM decisions WHERE action <> 'train' ORDER BY seq")
    assert [d[:3] for d in decisions] == [(1, "a", "back-off"), (1, "b", "skip")]
    assert "max_drift 0" in decisions[0][3] and "on 6 prompts" in decisions[0][3]
    st, _ = replay_state(wh, load_curriculum(graph), "d", make_policy("gated"))
    assert st.status == node_statuses(wh, "d") == {"a": "failed", "b": "skipped"}
    report = (tmp_path / "runs" / "d" / "report.html").read_text()
    assert 'id="drift"' in report and "on 6 prompts" in report
    from curriculum.cli.results import print_drift

    print_drift(wh, "d")  # what `curriculum run` prints after the mastery table
    printed = capsys.readouterr().out
    assert "drift of general ability, on 6 prompts" in printed and f"{drift:+.3f}  [{low:+.3f}, {high:+.3f}]" in printed
    assert max(len(line) for line in printed.splitlines()) <= 80, printed  # an 80-column terminal, ids unfolded


def test_max_drift_needs_drift_measured(tmp_path: Path) -> None:
    graph = tiny_graph(tmp_path)
    graph.write_text(graph.read_text().replace("max_attempts: 2}", "max_attempts: 2, max_drift: 0.5}"))
    loaded, problems = check_curriculum(graph)
    assert loaded is None and len(problems) == 1
    assert problems[0].line == 5 and "max_drift needs drift measured" in problems[0].message
    graph.write_text(graph.read_text().replace("nodes:\n", "drift: {prompts: 500}\nnodes:\n", 1))
    _, problems = check_curriculum(graph)
    assert [p.line for p in problems] == [6] and "100" in problems[0].message
    graph.write_text(graph.read_text().replace("drift: {prompts: 500}", "drift: {prompts: 32}"))
    loaded, problems = check_curriculum(graph)
    assert problems == [] and loaded.spec.drift.prompts == 32 and loaded.spec.gate_config("a").max_drift == 0.5
