"""`curriculum compare` on the tiny model: flat gets the first policy's steps seed by seed, runs are kept so more
seeds add to them, the figures and intervals are scipy's, each paired difference says its n, what it could detect and
what to do next (in the terminal and the HTML), and a bad policy list is one line."""

from __future__ import annotations

import html
import json
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from scipy import stats
from typer.testing import CliRunner

from curriculum.cli.app import app
from curriculum.loading.validate import load_curriculum
from curriculum.stats.power import paired_power, within_seed
from curriculum.stats.collapse import one_answer
from flows.compare import Comparison, comparison_html, comparison_lines, inputs_tag, mean_ci, verdict_items
from helpers import tiny_graph


def test_mean_ci_is_scipys_t_interval() -> None:
    xs = [0.41, 0.55, 0.62, 0.38, 0.5]
    low, high = stats.t.interval(0.95, 4, loc=sum(xs) / 5, scale=stats.sem(xs))
    got = mean_ci([*xs, None])
    assert got["n"] == 5 and got["mean"] == pytest.approx(0.492) and got["ci"] == pytest.approx([low, high])
    assert mean_ci([0.5, 0.5])["ci"] == [0.5, 0.5] and mean_ci([0.5])["ci"] is None


def test_paired_differences_follow_the_seeds() -> None:
    def row(seed, gates, score):
        return {"seed": seed, "gates_held": gates, "final_score": score, "bwt": 0.0, "drift": None, "total_steps": 10,
                "run_id": f"r{seed}", "end": {}}

    cmp = Comparison("g.yaml", None, ["mix", "flat"], [0, 1, 2], ["a"],
                     {"mix": [row(0, 2, 0.6), row(1, 1, 0.5), row(2, 2, 0.7)],
                      "flat": [row(2, 1, 0.4), row(0, 1, 0.5), row(1, 1, 0.5)]})  # flat's rows in another order
    d = cmp.paired()["flat"]
    assert d["final_score"]["each"] == [0.1, 0.0, 0.3] and d["gates_held"]["each"] == [1, 0, 1]
    want = mean_ci([0.1, 0.0, 0.3])
    assert d["final_score"]["mean"] == pytest.approx(want["mean"]) and d["final_score"]["ci"] == pytest.approx(want["ci"])
    lines = "\n".join(comparison_lines(cmp))
    assert "mix − flat, paired by seed: gates 0.67" in lines
    assert "<h2>Paired by seed</h2>" in comparison_html(cmp) and "(0.1, 0.0, 0.3)" in comparison_html(cmp)
    # rows read before the exam split have no item counts: n is the seeds alone, and the advice cannot be items
    assert d["final_score"]["power"] == paired_power([0.6 - 0.5, 0.5 - 0.5, 0.7 - 0.4]).as_dict()
    assert "  final score: n = 3 seeds, p = 0.27, detectable (80 % power) ±0.499: underpowered for 0.05 — add seeds" in lines
    assert "  gates held: n = 3 seeds, p = 0.18, detectable (80 % power) ±1.88 gates: underpowered for 1 gate" in lines


def test_each_difference_says_its_n_what_it_could_detect_and_what_next() -> None:
    def row(policy, seed, items):
        scores = {"a": items[:6], "b": items[6:]}
        node_means = [sum(v) / len(v) for v in scores.values()]
        return {"seed": seed, "gates_held": 1 + (seed + (policy == "mix")) % 2, "final_score": sum(node_means) / 2,
                "bwt": 0.0, "drift": None, "total_steps": 10, "run_id": f"{policy}{seed}", "end": {},
                "n_items": 10, "items_label": "exam items", "item_scores": scores}

    flat = [[1, 0, 1, 0, 1, 0, 1, 1, 0, 0], [0, 1, 1, 0, 1, 0, 1, 0, 1, 0], [1, 1, 0, 0, 1, 0, 0, 1, 1, 0]]
    mix = [[1, 1, 1, 0, 1, 0, 1, 1, 1, 0], [0, 1, 1, 1, 1, 0, 1, 0, 1, 1], [1, 1, 0, 0, 1, 1, 0, 1, 1, 0]]
    cmp = Comparison("g.yaml", "demo", ["mix", "flat"], [0, 1, 2], ["a", "b"],
                     {"mix": [row("mix", s, mix[s]) for s in range(3)], "flat": [row("flat", s, flat[s]) for s in range(3)]},
                     matters=0.1)
    d = cmp.paired()["flat"]["final_score"]
    diffs = [m["final_score"] - f["final_score"] for m, f in zip(cmp.rows["mix"], cmp.rows["flat"])]
    per_item = [[x - y for x, y in zip(mix[s], flat[s])] for s in range(3)]
    want = paired_power(diffs, n_items=10, item_diffs=per_item, weights=[1 / 12] * 6 + [1 / 8] * 4, matters=0.1)
    assert d["power"] == want.as_dict() and want.item_share is not None
    lines = comparison_lines(cmp)
    assert lines[-2] == f"  final score: {d['said']}" and d["said"].startswith("n = 3 seeds × 10 exam items, p = ")
    assert f"{want.verdict.value} for 0.1 — {want.advice.value}" in d["said"]
    page = comparison_html(cmp)
    assert "<h2>What each difference could detect</h2>" in page and "0.1 score points" in page
    assert f"<td>3 seeds × 10 exam items</td><td>{want.p:.2g}</td><td>±{want.mde:.3f}</td><td>{want.verdict.value}</td>" in page
    assert "within_seed" not in d and "within the one seed" not in page  # several seeds: the interval over them
    # one seed: no interval over seeds ("undetermined"), and beside it what the exam tells apart within that seed
    one = Comparison("g.yaml", "demo", ["mix", "flat"], [0], ["a", "b"],
                     {"mix": [row("mix", 0, mix[0])], "flat": [row("flat", 0, flat[0])]}, matters=0.1)
    d = one.paired()["flat"]["final_score"]
    within = within_seed([per_item[0][:6], per_item[0][6:]], matters=0.1)  # node a's 6 items, node b's 4
    assert d["power"]["verdict"] == "undetermined" and d["within_seed"] == within.as_dict()
    assert within.mean == pytest.approx(diffs[0])
    assert f"  final score within the one seed: {d['within_said']}" in comparison_lines(one)
    assert d["within_said"].startswith(f"{within.mean:.3f} [") and "n = 1 seed × 10 exam items" in d["within_said"]
    assert "final score, within the one seed (items paired)" in comparison_html(one)


def test_the_verdict_items_are_read_before_and_after_the_exam_split() -> None:
    old = {"a": {"score": 0.5, "n_items": 8, "gate": 0.7}, "b": {"score": 0.6, "n_items": 4, "gate": 0.7}}
    assert verdict_items(old, ["a", "b"]) == {"n_items": 12, "items_label": "items", "item_scores": None}
    new = {"a": {"score": 0.5, "n": 2, "split": "exam", "item_scores": [1.0, 0.0]},
           "b": {"score": 1.0, "n": 1, "split": "unsplit", "item_scores": [1.0]}}
    got = verdict_items(new, ["a", "b", "remedial"])
    assert got == {"n_items": 3, "items_label": "items (exam on 1 of 2 nodes, the rest unsplit or never examined)",
                   "item_scores": {"a": [1.0, 0.0], "b": [1.0]}}
    new["b"] |= {"split": "exam", "item_scores": []}  # no item rows: no add-items advice, n still said
    assert verdict_items(new, ["a", "b"]) == {"n_items": 3, "items_label": "exam items", "item_scores": None}


def test_a_run_that_says_one_thing_to_everything_is_named_beside_the_verdict() -> None:
    varied = Counter({"north": 6, "east": 5, "south": 5, "west": 4})
    end = {"collapsed": {"answers": Counter({"east": 19, "north": 1}), "references": varied},
           "learned": {"answers": Counter(varied), "references": varied},
           "one_right_answer": {"answers": Counter({"yes": 20}), "references": Counter({"yes": 19, "no": 1})},
           "too_few": {"answers": Counter({"east": 9}), "references": Counter({"north": 5, "east": 4})},
           "just_enough": {"answers": Counter({"east": 10}), "references": Counter({"north": 5, "east": 5})},
           "no_references": {"answers": Counter({"east": 20}), "references": Counter()},
           "at_the_line": {"answers": Counter({"east": 18, "west": 2}), "references": Counter({"east": 10, "west": 10})},
           "just_under": {"answers": Counter({"east": 17, "west": 3}), "references": varied}}
    got = one_answer(end, [*end, "never_probed"])
    assert got == {"collapsed": {"answer": "east", "share": 0.95, "n": 20},
                   "just_enough": {"answer": "east", "share": 1.0, "n": 10},
                   "at_the_line": {"answer": "east", "share": 0.9, "n": 20}}

    def row(policy, flagged):
        return {"seed": 0, "gates_held": 1, "final_score": 0.5, "bwt": 0.0, "drift": None, "total_steps": 10,
                "run_id": f"{policy}-s0", "end": {}, "one_answer": flagged}

    cmp = Comparison("g.yaml", None, ["gated", "flat"], [0], ["collapsed"],
                     {"gated": [row("gated", {})], "flat": [row("flat", {"collapsed": got["collapsed"]})]})
    warning = ("warning: flat, flat-s0: one answer to nearly every verdict item on collapsed ('east' on 95.0% of 20) "
               "while the expected answers vary: a collapsed model, so a difference against it is not a fair comparison")
    assert comparison_lines(cmp)[-1] == warning
    assert html.escape(warning.removeprefix("warning: ")) in comparison_html(cmp)
    cmp.rows["flat"] = [row("flat", {})]  # rows without it (or read before it was counted) say nothing
    assert not any("warning" in line for line in comparison_lines(cmp)) and "class='warn'" not in comparison_html(cmp)


def test_a_bad_policy_list_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["compare", str(tiny_graph(tmp_path)), "--policies", "mix,shuffled",
                                      "--db", str(tmp_path / "w.duckdb")])
    assert result.exit_code == 1 and not (tmp_path / "w.duckdb").exists()
    assert result.stderr.strip().startswith("--policies: shuffled (expected distinct names among gated,")


def test_another_graph_or_an_edited_one_names_other_runs(tmp_path: Path) -> None:
    graph = tiny_graph(tmp_path)
    before = inputs_tag(load_curriculum(graph))
    assert before.startswith(f"{graph.stem}-") and before == inputs_tag(load_curriculum(graph))
    data = next(p for p in tmp_path.rglob("*.jsonl"))
    data.write_text(data.read_text() + data.read_text().splitlines()[0] + "\n")  # one more training pair
    assert inputs_tag(load_curriculum(graph)) != before


def test_the_code_fingerprint_follows_every_product_source_file(tmp_path: Path) -> None:
    from flows.codeversion import PACKAGES, fingerprint_of

    for package in PACKAGES:
        (tmp_path / package / "sub").mkdir(parents=True)
        (tmp_path / package / "sub" / "m.py").write_text("X = 1\n")
    (tmp_path / "notes.md").write_text("not code")
    (tmp_path / "probes" / "data.jsonl").write_text('{"prompt": "a"}\n')
    libs = {"torch": "2.13.0"}
    before = fingerprint_of(tmp_path, libs)
    assert before == fingerprint_of(tmp_path, libs) and len(before) == 12
    (tmp_path / "notes.md").write_text("still not code")
    (tmp_path / "warehouse" / "curriculum.duckdb").write_bytes(b"rows")  # the default warehouse lives there
    assert fingerprint_of(tmp_path, libs) == before
    assert fingerprint_of(tmp_path, {"torch": "2.14.0"}) != before
    (tmp_path / "probes" / "data.jsonl").write_text('{"prompt": "b"}\n')  # package data moves figures too
    changed = fingerprint_of(tmp_path, libs)
    assert changed != before
    (tmp_path / "probes" / "sub" / "m.py").write_text("X = 2\n")
    assert fingerprint_of(tmp_path, libs) not in (before, changed)


@pytest.mark.timeout(600)
def test_a_run_resumed_by_other_code_records_both(prefect_harness, tmp_path: Path, monkeypatch) -> None:
    """A run killed under one version of the product and finished under another is not passed off as the first's:
    its record lists both, and the figures read from it say so."""
    import flows.curriculum_flow
    from flows.codeversion import fingerprint
    from flows.compare import summarise
    from flows.curriculum_flow import curriculum
    from warehouse.db import Warehouse
    from warehouse.records import get_run

    from flows import faults

    graph = tiny_graph(tmp_path)
    kw = {"graph": str(graph), "warehouse": str(tmp_path / "w.duckdb"), "runs_dir": str(tmp_path / "runs")}
    faults._seen.clear()  # the fault counts per process: this test's must not use up another's, nor theirs this
    monkeypatch.setenv("CURRICULUM_FAIL_AT", "stage:data")  # dies after its baseline, before stage 1
    with pytest.raises(ValueError, match="CURRICULUM_FAIL_AT"):
        curriculum(run_id="r", train_overrides={"max_steps": 2}, **kw)
    monkeypatch.delenv("CURRICULUM_FAIL_AT")
    faults._seen.clear()
    monkeypatch.setattr(flows.curriculum_flow, "fingerprint", lambda: "0ther0c0de000")
    monkeypatch.setattr(flows.curriculum_flow, "code_record", lambda: {"version": "9", "fingerprint": "0ther0c0de000"})
    curriculum(resume="r", **kw)
    config = json.loads(get_run(Warehouse(kw["warehouse"]), "r")["config"])
    assert config["code"]["fingerprint"] == fingerprint() and config["resumed_under"] == [
        {"version": "9", "fingerprint": "0ther0c0de000"}]
    assert summarise(Warehouse(kw["warehouse"]), "r", ["a"])["code"] == f"{fingerprint()}+0ther0c0de000"


@pytest.mark.timeout(1800)
def test_compare_runs_flat_at_the_same_steps_and_adds_seeds(prefect_harness, tmp_path: Path, monkeypatch) -> None:
    import flows.compare
    from flows.codeversion import fingerprint
    from flows.compare import compare, other_code_runs, run_id_for
    from warehouse.db import Warehouse
    from warehouse.records import get_run

    graph, db, runs = tiny_graph(tmp_path), tmp_path / "w.duckdb", tmp_path / "runs"
    first = compare(str(graph), ["mix", "flat"], [0], max_steps=8, warehouse=str(db), runs_dir=str(runs))
    (mix,), (flat,) = first.rows["mix"], first.rows["flat"]
    assert flat["total_steps"] == mix["total_steps"] > 0  # the same compute, seed by seed
    _, made = Warehouse(db).query("SELECT run_id, policy, seed FROM runs ORDER BY run_id")
    tag, code = inputs_tag(load_curriculum(graph)), fingerprint()[:6]
    assert made == [(f"cmp-{tag}-{code}-flat-cap8-s0", "flat", 0), (f"cmp-{tag}-{code}-mix-cap8-s0", "mix", 0)]
    assert json.loads(get_run(Warehouse(db), mix["run_id"])["config"])["code"]["fingerprint"] == fingerprint()
    logged: list[str] = []
    second = compare(str(graph), ["mix", "flat"], [0, 1], max_steps=8, warehouse=str(db), runs_dir=str(runs),
                     log=logged.append)
    assert logged == [f"cmp-{tag}-{code}-mix-cap8-s1: running mix, seed 1",
                      f"cmp-{tag}-{code}-flat-cap8-s1: running flat, seed 1"]  # seed 0 read
    assert second.rows["mix"][0] == mix and [r["seed"] for r in second.rows["flat"]] == [0, 1]
    assert second.table()["mix"]["final_score"] == mean_ci([r["final_score"] for r in second.rows["mix"]])
    said = second.paired()["flat"]["final_score"]["said"]  # the end state's n and items, read from the warehouse
    assert said.startswith(f"n = 2 seeds × {second.rows['mix'][0]['n_items']:,} ")
    assert f"  final score: {said}" in comparison_lines(second)
    # other code (an upgrade, an edit of a policy): other runs, and the finished ones it will not reuse are named
    monkeypatch.setattr(flows.compare, "fingerprint", lambda: "abcdef123456")
    assert run_id_for(tag, "mix", 0, None, 8) == f"cmp-{tag}-abcdef-mix-cap8-s0"
    asked = [run_id_for(tag, p, s, None, 8) for s in (0, 2) for p in ("mix", "flat")]
    assert other_code_runs(Warehouse(db), tag, asked) == [f"cmp-{tag}-{code}-flat-cap8-s0 (completed)",
                                                          f"cmp-{tag}-{code}-mix-cap8-s0 (completed)"]
    # a run named before the code was part of the id, and an unfinished one, are named too; another seed's is not
    from warehouse.records import set_run_status

    with duckdb.connect(str(db)) as con:
        con.execute(f"UPDATE runs SET run_id = 'cmp-{tag}-mix-cap8-s0' WHERE run_id = 'cmp-{tag}-{code}-mix-cap8-s0'")
    set_run_status(Warehouse(db), f"cmp-{tag}-{code}-flat-cap8-s0", "interrupted")
    assert other_code_runs(Warehouse(db), tag, asked) == [f"cmp-{tag}-{code}-flat-cap8-s0 (interrupted)",
                                                          f"cmp-{tag}-mix-cap8-s0 (completed)"]
