"""Check items steer a run, exam items judge it: the split, and proof that no decision reads an exam item."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from curriculum.loading.exam import exam_side
from curriculum.loading.summary import summary_lines
from curriculum.loading.validate import load_curriculum
from tests.helpers import write_jsonl
from warehouse.db import Warehouse, migrations
from warehouse.records import end_state, mastery_table


def exam_graph(root: Path, *, own_exam: bool, policy: str = "gated", nonsense: bool = False, items: int = 24) -> Path:
    """Two nodes of two-way choice items on the tiny model. own_exam: each probe names its exam file (of `items`
    items); else the `items` items of one file are split by hash. nonsense: the first exam item of node a replaced
    by nonsense (own_exam only, where its side cannot move)."""
    for n in "ab":
        write_jsonl(root / f"{n}.jsonl", [{"prompt": f"{n} fact {i}?", "answer": f"{n} is fact {i}."} for i in range(6)])
        write_jsonl(root / f"{n}_mc.jsonl", [{"prompt": f"{n} pick {i}", "choices": ["yes", "no"], "answer": i % 2}
                                             for i in range(items)])
        exam = [{"prompt": f"{n} exam {i}", "choices": ["yes", "no"], "answer": i % 2} for i in range(items)]
        if nonsense and n == "a":
            exam = [{"prompt": f"zq xv kk ploo {i}?", "choices": ["yes", "no"], "answer": 1 - i % 2} for i in range(items)]
        write_jsonl(root / f"{n}_exam.jsonl", exam)
    probe = "{{kind: transfer, items: {n}_mc.jsonl{extra}}}"
    graph = root / "graph.yaml"
    graph.write_text(
        f"curriculum: exam\nmodel: {{base: tiny-random}}\npolicy: {policy}\n"
        "defaults:\n  train: {epochs: 1, lr: 0.005, batch_size: 4, max_length: 64, max_steps: 8}\n  gate: {min_score: 0.9}\n"
        "nodes:\n" + "".join(
            f"  {n}:\n    layer: definition\n    data: {n}.jsonl\n" + ("    requires: [a]\n" if n == "b" else "")
            + "    probes: [" + probe.format(n=n, extra=f", exam: {n}_exam.jsonl" if own_exam else "") + "]\n"
            for n in "ab"), encoding="utf-8")
    return graph


def test_the_split_is_a_function_of_content_alone(tmp_path: Path) -> None:
    graph = exam_graph(tmp_path, own_exam=False, items=40)
    first = load_curriculum(graph)
    sides = {r.value.prompt: True for recs in first.exam_items["a"] for r in recs}
    assert 8 <= len(sides) <= 32 and sum(len(r) for r in first.probe_items["a"]) == 40 - len(sides)
    for r in (r for recs in first.probe_items["a"] + first.exam_items["a"] for r in recs):  # the same hash, recomputed
        assert exam_side(r.value, 0, 0.5) == (r.value.prompt in sides)
    rows = [json.loads(line) for line in (tmp_path / "a_mc.jsonl").read_text().splitlines()]
    write_jsonl(tmp_path / "a_mc.jsonl", rows[::-1] + [{"prompt": "a pick new", "choices": ["yes", "no"], "answer": 0}])
    again = load_curriculum(graph)  # reordered, one item added: no other item changes side
    assert sides.keys() <= {r.value.prompt for recs in again.exam_items["a"] for r in recs}
    assert not sides.keys() & {r.value.prompt for recs in again.probe_items["a"] for r in recs}
    graph.write_text(graph.read_text().replace("policy: gated", "policy: mix\nexam: {seed: 7}"))
    other = load_curriculum(graph)
    assert {r.value.prompt for recs in other.exam_items["a"] for r in recs} != set(sides)  # another seed, another exam


def test_a_probes_own_exam_file_is_its_exam(tmp_path: Path) -> None:
    loaded = load_curriculum(exam_graph(tmp_path, own_exam=True, items=6))
    assert [r.value.prompt for r in loaded.probe_items["a"][0]] == [f"a pick {i}" for i in range(6)]
    assert [r.value.prompt for r in loaded.exam_items["a"][0]] == [f"a exam {i}" for i in range(6)]
    assert loaded.unsplit == {}


def test_an_exam_file_repeating_a_check_item_is_refused_where_it_is(tmp_path: Path) -> None:
    from curriculum.loading.validate import check_curriculum

    graph = exam_graph(tmp_path, own_exam=True, items=6)
    rows = [json.loads(line) for line in (tmp_path / "b_exam.jsonl").read_text().splitlines()]
    rows[2]["prompt"] = "B pick 4 "  # the check item at b_mc.jsonl:5, in other case and spacing
    write_jsonl(tmp_path / "b_exam.jsonl", rows)
    loaded, problems = check_curriculum(graph)
    assert loaded is None and [str(p) for p in problems] == [
        f"{tmp_path / 'b_exam.jsonl'}:3:1: exam item repeats the check item at {tmp_path / 'b_mc.jsonl'}:5: an exam "
        "item must be one no decision reads"]


def test_validate_names_the_nodes_too_small_to_split(tmp_path: Path) -> None:
    loaded = load_curriculum(exam_graph(tmp_path, own_exam=False, items=6))
    assert loaded.unsplit == {"a": 6, "b": 6}
    assert loaded.exam_items == {"a": [[]], "b": [[]]} and len(loaded.probe_items["a"][0]) == 6
    line = next(s for s in summary_lines(loaded) if s.strip().startswith("exam:"))
    assert "0 of 2 nodes split" in line and "a (6)" in line and "b (6)" in line and "unsplit" in line


def _decided(db: Path, run_id: str) -> dict[str, list]:
    """Everything a run decided and saw on its check items: what must not move when an exam item does."""
    with duckdb.connect(str(db), read_only=True) as con:
        q = lambda sql: con.execute(sql, [run_id]).fetchall()  # noqa: E731
        return {
            "decisions": q("SELECT seq, stage, node_id, action, attempt, reason, score_before, score_after, n_items, "
                           "ci_low, ci_high FROM decisions WHERE run_id = ? ORDER BY seq"),
            "stages": q("SELECT stage, node_id, kind, status, steps, rounds, stop_reason, checks FROM stages "
                        "WHERE run_id = ? ORDER BY stage"),
            "check_rows": q("SELECT stage, node_id, split, probe_index, item, score FROM probe_results "
                            "WHERE run_id = ? AND split <> 'exam' ORDER BY ALL"),
            "node_scores": q("SELECT stage, node_id, score, n_items, ci_low, ci_high FROM node_scores WHERE run_id = ? "
                             "ORDER BY ALL"),
            "status": q("SELECT stage, node_id, status FROM node_status WHERE run_id = ? ORDER BY ALL"),
        }


def _exam_items(db: Path, run_id: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT stage, node_id, probe_index, item FROM probe_results WHERE run_id = ? "
                           "AND split = 'exam' ORDER BY ALL", [run_id]).fetchall()


FLAT_ROUNDS = {"epochs": 1, "round_steps": 2, "max_steps": 8, "max_epochs": 10**6, "patience": 10**6}  # as bench's


@pytest.mark.parametrize("policy, overrides", [("gated", None), ("flat", FLAT_ROUNDS)], ids=["gated", "flat-rounds"])
def test_an_exam_item_replaced_by_nonsense_changes_no_decision(tmp_path: Path, prefect_harness, policy: str,
                                                               overrides: dict | None) -> None:
    """Same graph, seed and policy, once with a node's exam items swapped for nonsense: every decision, check score,
    stage (its rounds, checks and kept round: flat-rounds keeps its best check) and status is the same; only the
    exam differs. And the exam is the same items across seeds and policies."""
    from flows.curriculum_flow import curriculum

    db = tmp_path / "wh.duckdb"
    for name, nonsense in (("clean", False), ("nonsense", True)):
        (tmp_path / name).mkdir()
        graph = exam_graph(tmp_path / name, own_exam=True, policy=policy, nonsense=nonsense)
        curriculum(graph=str(graph), run_id=f"{policy}-{name}", warehouse=str(db), runs_dir=str(tmp_path / "runs"), seed=0,
                   train_overrides=overrides)
    clean, swapped = _decided(db, f"{policy}-clean"), _decided(db, f"{policy}-nonsense")
    assert clean["decisions"] and clean["stages"]
    for key in clean:
        assert clean[key] == swapped[key], key
    assert _exam_items(db, f"{policy}-clean") == _exam_items(db, f"{policy}-nonsense")
    exam_a = lambda run: [e["item_scores"] for n, e in end_state(Warehouse(db), run).items() if n == "a"]  # noqa: E731
    assert exam_a(f"{policy}-clean") != exam_a(f"{policy}-nonsense")  # the exam itself did change
    wh = Warehouse(db)
    end = end_state(wh, f"{policy}-clean")
    assert {e["split"] for e in end.values()} == {"exam"} and {e["n"] for e in end.values()} == {24}
    assert all(len(e["item_scores"]) == 24 and e["check_n"] == 24 for e in end.values())
    # the answers counted are the verdict's own items, not the check items read on the way
    assert all(sum(e["answers"].values()) == sum(e["references"].values()) == 24 for e in end.values())
    cols, rows = mastery_table(wh, f"{policy}-clean")
    assert {dict(zip(cols, r))["split"] for r in rows} == {"exam"}
    if policy != "gated":
        return
    (tmp_path / "other").mkdir()  # another policy and seed sits the same exam
    other = "flat"
    curriculum(graph=str(exam_graph(tmp_path / "other", own_exam=True, policy=other)), run_id=f"{policy}-other",
               warehouse=str(db), runs_dir=str(tmp_path / "runs"), seed=3)
    assert {r[1:] for r in _exam_items(db, f"{policy}-other")} == {r[1:] for r in _exam_items(db, f"{policy}-clean")}


def test_a_split_node_never_examined_is_not_called_unsplit(tmp_path: Path, prefect_harness) -> None:
    """Without a final sweep no exam is read: the end state says so ('none'), not that the node was too small."""
    from flows.curriculum_flow import curriculum

    graph = exam_graph(tmp_path, own_exam=True, items=8)
    db = tmp_path / "wh.duckdb"
    curriculum(graph=str(graph), run_id="no-sweep", warehouse=str(db), runs_dir=str(tmp_path / "runs"),
               final_probe=False, max_stages=1)
    end = end_state(Warehouse(db), "no-sweep")
    assert {e["split"] for e in end.values()} == {"none"} and all(len(e["item_scores"]) == 8 for e in end.values())


def test_a_warehouse_written_before_the_split_opens_with_its_rows_unsplit(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    with duckdb.connect(str(db)) as con:  # the schema as it was before the split, with one run's rows
        con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
                    "applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)")
        for version, name, sql in migrations():
            if version < 12:
                con.execute(sql)
                con.execute("INSERT INTO schema_version (version, name) VALUES (?, ?)", [version, name])
        con.execute("INSERT INTO runs (run_id, curriculum, graph_hash, policy, seed, base_model, status) "
                    "VALUES ('old', 'c', 'h', 'gated', 0, 'tiny-random', 'completed')")
        con.execute("INSERT INTO stages (run_id, stage, node_id, attempt, kind, status) VALUES "
                    "('old', 1, '*', 1, 'final', 'done')")
        con.execute("INSERT INTO probe_results (run_id, stage, node_id, probe_kind, probe_index, item, score, passed, "
                    "output, reference) VALUES ('old', 1, 'a', 'transfer', 0, 1, 1.0, true, ' East ', 'east'), "
                    "('old', 1, 'a', 'transfer', 0, 2, 0.0, false, 'east', 'North')")
        con.execute("INSERT INTO node_scores VALUES ('old', 1, 'a', 0.5, 2, 2, 0.1, 0.9, 'wilson', 0.9, 0.5)")
        con.execute("INSERT INTO node_status (run_id, stage, node_id, status, attempts, spent_steps, rehearsals) "
                    "VALUES ('old', 1, 'a', 'trained', 1, 8, 0)")
    wh = Warehouse(db)
    read_before = end_state(wh, "old")  # read without migrating: every verdict unsplit
    assert read_before["a"]["split"] == "unsplit" and read_before["a"]["item_scores"] == [1.0, 0.0]
    # what the model said and what was expected, each counted as written but for case and spaces
    assert read_before["a"]["answers"] == {"east": 2} and read_before["a"]["references"] == {"east": 1, "north": 1}
    cols, rows = mastery_table(wh, "old")
    assert dict(zip(cols, rows[0]))["split"] == "unsplit"
    wh.write("decisions", [])  # the first write migrates it
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT DISTINCT split FROM probe_results").fetchall() == [("unsplit",)]
    assert end_state(wh, "old") == read_before
