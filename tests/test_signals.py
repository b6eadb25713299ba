"""Decisions that know their noise, on the tiny model: sequential draws stop once a gate call is clear,
a null stage never triggers a rehearsal nor changes a call, and calibration undoes a model's lean."""

from __future__ import annotations

from pathlib import Path

import pytest
from peft import PeftModel

from curriculum.policies.draws import pool_keys
from curriculum.models.load import TINY, load_base
from curriculum.policies.runstate import RunState
from curriculum.models.chat import Example
from curriculum.training.train import train_stage
from curriculum.loading.validate import load_curriculum
from helpers import write_jsonl
from probes.results import ItemResult
from probes.sweep import probe_nodes
from warehouse.db import Warehouse


def _choice_graph(root: Path, items: int, answer_word: str | None = None, extra: str = "") -> Path:
    words = ["zorblat", "quiet market", "hot desert", "river stone"]
    rows = []
    for i in range(items):
        choices = words[i % 4:] + words[: i % 4]  # every option takes every position
        answer = choices.index(answer_word) if answer_word else i % 4
        rows.append({"prompt": f"Scene number {i}: which fits?", "choices": choices, "answer": answer})
    write_jsonl(root / "mc.jsonl", rows)
    write_jsonl(root / "data.jsonl", [{"prompt": f"Say the word {i}.", "answer": "zorblat"} for i in range(8)])
    graph = root / "g.yaml"
    graph.write_text("curriculum: c\nmodel: {base: tiny-random}\npolicy: gated\n"
                     "defaults:\n  train: {epochs: 1, lr: 0.01, batch_size: 4, max_length: 64}\n  gate: {min_score: 0.7}\n"
                     f"nodes:\n  n:\n    layer: transfer\n    data: data.jsonl\n{extra}"
                     "    probes: [{kind: transfer, items: mc.jsonl}]\n")
    return graph


def _results(loaded, keys, right: set) -> list[ItemResult]:
    return [ItemResult("n", "transfer", i, line, "p", "o", "r", score=float((i, line) in right), passed=(i, line) in right)
            for i, line in keys]


@pytest.mark.parametrize("every, draws", [(1, 0), (0, 0), (3, 1)])
def test_sequential_probing_stops_drawing_once_the_call_is_clear(tmp_path: Path, every: int, draws: int) -> None:
    """All right or all wrong: the first half of the pool decides. Two in three right: unclear, so the rest is drawn."""
    from flows.planning import draw_until_clear

    loaded = load_curriculum(_choice_graph(tmp_path, 12))
    st = RunState.start(loaded.spec, loaded.graph)
    keys = pool_keys(loaded, "n")
    right = {k for j, k in enumerate(keys) if every and (every == 1 or j % every != 2)}
    asked: list[list] = []

    def probe(selection):
        asked.append(list(selection["n"]))
        return {"n": _results(loaded, selection["n"], right)}

    results = {"n": _results(loaded, keys[:6], right)}  # the first draw: half the pool
    assert draw_until_clear(loaded, st, "n", results, probe) == draws
    drawn = [k for batch in asked for k in batch]
    assert len(drawn) == len(set(drawn)) and not set(drawn) & set(keys[:6])  # never an item already used
    assert len(results["n"]) == 6 + len(drawn)


def test_null_stages_never_rehearse_nor_change_a_gate_call(prefect_harness, tmp_path: Path) -> None:
    from flows.curriculum_flow import curriculum
    from helpers import tiny_graph

    graph = tiny_graph(tmp_path)
    text = graph.read_text().replace("lr: 0.005", "lr: 0.0")
    text = text.replace("  a:\n    layer: definition\n", "  a:\n    layer: definition\n    gate: {min_score: 0.0}\n")
    text = text.replace("    requires: [a]\n", "    requires: [a]\n    gate: {min_score: 0.99, max_attempts: 3}\n")
    graph.write_text(text)
    db = tmp_path / "w.duckdb"
    curriculum(graph=str(graph), warehouse=str(db), runs_dir=str(tmp_path / "runs"), run_id="null")
    wh = Warehouse(db)
    _, actions = wh.query("SELECT stage, node_id, action FROM decisions WHERE action <> 'train' ORDER BY seq")
    # plateaus, retries that continue them, then the budget ends below the gate: nothing learned and nothing made
    # worse, so the node stays below its gate with its (unchanged) adapter
    assert actions == [(0, "a", "pass"), (1, "b", "retry"), (2, "b", "retry"), (3, "b", "keep")]
    _, status = wh.query("SELECT node_id, status FROM final_status ORDER BY node_id")
    assert status == [("a", "mastered"), ("b", "below-gate")]
    _, why = wh.query("SELECT kind, stop_reason, parent_stage FROM stages ORDER BY stage")
    # each retry continues the last adapter, and the final sweep reads the one kept below the gate
    assert why == [("train", "plateau", None), ("train", "plateau", 1), ("train", "plateau", 2), ("final", None, 3)]
    # the unchanged model gives every item the score it had at baseline: same items, same numbers
    _, moved = wh.query("""SELECT count(*) FROM probe_results p JOIN probe_results b
                           ON b.run_id = p.run_id AND b.stage = 0 AND (b.node_id, b.probe_index, b.item) = (p.node_id, p.probe_index, p.item)
                           WHERE p.stage > 0 AND p.score <> b.score""")
    assert moved == [(0,)]
    _, drift = wh.query("""SELECT count(*), max(abs(p.ref_logprob - b.ref_logprob)) FROM probe_results p JOIN probe_results b
                           ON b.run_id = p.run_id AND b.stage = 0 AND (b.node_id, b.probe_index, b.item) = (p.node_id, p.probe_index, p.item)
                           WHERE p.stage > 0 AND p.probe_kind = 'paraphrase'""")
    assert drift[0][0] > 0 and drift[0][1] < 1e-3  # the likelihoods themselves, not only the scores, are unchanged
    _, regression = wh.query("SELECT count(DISTINCT stage) FROM probe_results WHERE node_id = 'a' AND stage > 0")
    assert regression == [(4,)]  # the held node is checked after each of the three stages and in the final sweep


def test_calibration_undoes_a_lean_towards_one_word(tmp_path: Path) -> None:
    """A stage trained only to say one word makes raw scoring pick it everywhere; calibrated scoring does not."""
    loaded = load_curriculum(_choice_graph(tmp_path, 24, answer_word="zorblat"))
    cfg = loaded.spec.train_config("n").model_copy(update={"epochs": 4})
    examples = [Example(r.value.prompt, r.value.answer) for r in loaded.examples["n"]]
    result = train_stage(TINY, None, examples, loaded.spec.model.lora, cfg, tmp_path / "stage", progress=False)
    base = load_base(TINY)
    model = PeftModel.from_pretrained(base.model, str(result.adapter_dir)).eval()
    items = probe_nodes(model, base.tokenizer, loaded, {"n": None})["n"]
    raw = sum(r.raw_correct for r in items) / len(items)
    calibrated = sum(r.calibrated_correct for r in items) / len(items)
    print(f"\nfavoured word is every answer: raw {raw:.3f}, calibrated {calibrated:.3f}, chance 0.25")
    assert raw == 1.0
    assert calibrated <= 0.6  # 24 items; on the real model bench/signals.py measures it on the bundled probes


def test_calibrate_prints_levels_and_writes_gates_that_auto_reproduces(prefect_harness, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from curriculum.cli.app import app
    from flows.curriculum_flow import curriculum
    from helpers import tiny_graph

    monkeypatch.chdir(tmp_path)
    graph = tiny_graph(tmp_path)
    result = CliRunner().invoke(app, ["calibrate", str(graph), "--write", str(tmp_path / "calibrated.yaml")])
    assert result.exit_code == 0, result.output
    assert "suggested" in result.stdout and "wrote" in result.stdout
    written = load_curriculum(tmp_path / "calibrated.yaml")
    suggested = {n: written.spec.gate_config(n).min_score for n in ("a", "b")}
    assert all(isinstance(v, float) and 0.0 < v <= 0.95 for v in suggested.values())
    assert (tmp_path / "calibrated.yaml").read_text().startswith("curriculum: tiny")
    # min_score: auto computes the same gates at run time and records them
    graph.write_text(graph.read_text().replace("gate: {min_score: 0.5, max_attempts: 2}", "gate: {min_score: auto, max_attempts: 2}"))
    curriculum(graph=str(graph), warehouse=str(tmp_path / "w.duckdb"), runs_dir=str(tmp_path / "runs"), run_id="auto",
               max_stages=1)
    _, rows = Warehouse(tmp_path / "w.duckdb").query("SELECT node_id, gate, reason FROM decisions WHERE action = 'gate' ORDER BY node_id")
    assert [(n, g) for n, g, _ in rows] == [(n, pytest.approx(suggested[n])) for n in ("a", "b")]
    assert all("min_score auto" in reason for *_, reason in rows)


def test_a_written_gate_above_the_datas_own_level_is_called_out_of_reach(tmp_path: Path) -> None:
    from helpers import tiny_graph
    from probes.calibrate import out_of_reach, recite_level

    graph = tiny_graph(tmp_path)
    mixed = graph.read_text()
    para_only = "\n".join(line for line in mixed.splitlines() if "kind: transfer" not in line) + "\n"
    graph.write_text(para_only)
    loaded = load_curriculum(graph)
    levels = {n: recite_level(loaded, n) for n in ("a", "b")}
    assert all(v is not None and 0 < v < 0.95 for v in levels.values())
    for gate, flagged in ((0.95, ["a", "b"]), (round(min(levels.values()) - 0.01, 3), [])):
        graph.write_text(para_only.replace("min_score: 0.5,", f"min_score: {gate},"))
        notes = out_of_reach(load_curriculum(graph), ["a", "b"], {})
        assert [n.split(":")[0] for n in notes] == flagged
        if flagged:
            assert f"gate 0.950 is above {levels['a']:.3f}" in notes[0] and "min_score: auto" in notes[0]
    # a node with choice items too can score 1 on those: never called out of reach
    graph.write_text(mixed.replace("min_score: 0.5,", "min_score: 0.95,"))
    assert out_of_reach(load_curriculum(graph), ["a", "b"], {}) == []
