"""What `--from` plans for each node of an edited graph: the pure diff against a run's snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest

from curriculum.runs.lineage import Snapshot, diff_graphs, file_rows
from curriculum.loading.validate import load_curriculum
from helpers import tiny_graph, write_jsonl

C_NODE = ("  c:\n    layer: transfer\n    requires: [b]\n    data: c.jsonl\n"
          "    probes:\n      - {kind: transfer, items: c_choice.jsonl}\n")


def _snapshot(graph: Path, status: dict[str, str], run_status: str = "completed") -> Snapshot:
    loaded = load_curriculum(graph)
    files: dict[str, dict[str, str | None]] = {}
    for row in file_rows(loaded):
        files.setdefault(row["node_id"], {})[row["file_key"]] = row["sha256"]
    return Snapshot("p1", loaded.text, run_status, "gated", loaded.spec.model.base, None, files, status)


@pytest.fixture
def three(tmp_path: Path) -> Path:
    """a -> b -> c, all three mastered in the parent run."""
    graph = tiny_graph(tmp_path)
    write_jsonl(tmp_path / "c.jsonl", [{"prompt": f"What is c {i}?", "answer": f"c means {i}"} for i in range(4)])
    write_jsonl(tmp_path / "c_choice.jsonl", [{"prompt": f"Pick c {i}", "choices": ["x", "y"], "answer": i % 2}
                                              for i in range(4)])
    graph.write_text(graph.read_text() + C_NODE)
    return graph


MASTERED = {"a": "mastered", "b": "mastered", "c": "mastered"}


def test_unchanged_graph_keeps_every_node(three: Path) -> None:
    snap = _snapshot(three, MASTERED)
    found = diff_graphs(snap, load_curriculum(three))
    assert found.actions() == {"a": "keep", "b": "keep", "c": "keep"}
    assert not found.changed and not found.added and not found.removed and not found.blockers


def test_added_node_is_scheduled_with_what_requires_it(three: Path) -> None:
    snap = _snapshot(three, MASTERED)
    text = three.read_text().replace("    requires: [b]\n", "    requires: [b, d]\n")
    write_jsonl(three.parent / "d.jsonl", [{"prompt": "d?", "answer": "d is d"}])
    three.write_text(text + "  d:\n    layer: analogy\n    requires: [a]\n    data: d.jsonl\n")
    found = diff_graphs(snap, load_curriculum(three))
    assert found.added == ["d"]
    assert found.actions() == {"a": "keep", "b": "keep", "d": "schedule", "c": "schedule"}
    assert found.plan["d"].reason == "new" and "changed: requires" in found.plan["c"].reason


def test_removed_node_is_dropped(three: Path) -> None:
    snap = _snapshot(three, MASTERED)
    three.write_text(three.read_text().replace(C_NODE, ""))
    found = diff_graphs(snap, load_curriculum(three))
    assert found.removed == ["c"]
    assert found.actions() == {"a": "keep", "b": "keep", "c": "drop"}
    assert found.plan["c"].status == "mastered"


def test_changed_data_file_schedules_the_node_and_its_dependants(three: Path) -> None:
    snap = _snapshot(three, MASTERED)
    with open(three.parent / "b.jsonl", "a") as f:
        f.write('{"prompt": "One more b?", "answer": "Yes, one more b."}\n')
    found = diff_graphs(snap, load_curriculum(three))
    assert found.actions() == {"a": "keep", "b": "schedule", "c": "schedule"}
    assert [c.field for c in found.files["b"]] == ["file data"]
    assert found.plan["b"].reason == "changed: file data"
    assert found.plan["c"].reason == "requires 'b', scheduled"


def test_changed_gate_is_named_with_its_old_and_new_value(three: Path) -> None:
    snap = _snapshot(three, MASTERED)
    three.write_text(three.read_text().replace("  b:\n    layer: causality\n",
                                               "  b:\n    layer: causality\n    gate: {min_score: 0.8}\n"))
    found = diff_graphs(snap, load_curriculum(three))
    assert [(c.field, c.old, c.new) for c in found.gates["b"]] == [("gate.min_score", 0.5, 0.8)]
    assert found.actions() == {"a": "keep", "b": "schedule", "c": "schedule"}
    # a default changed reaches every node that does not set its own
    three.write_text(three.read_text().replace("max_attempts: 2}", "max_attempts: 3}"))
    found = diff_graphs(snap, load_curriculum(three))
    assert set(found.gates) == {"a", "b", "c"} and found.nodes("schedule") == ["a", "b", "c"]
    assert any(c.field == "defaults.gate.max_attempts" for c in found.top)


def test_cosmetic_edits_keep_and_unfinished_or_blocked_nodes(three: Path) -> None:
    snap = _snapshot(three, {"a": "mastered", "b": "failed", "c": "skipped"})
    three.write_text(three.read_text().replace("    layer: definition\n", "    layer: definition\n    description: x\n")
                     + "  e:\n    layer: analogy\n    requires: [b]\n    data: c.jsonl\n")
    found = diff_graphs(snap, load_curriculum(three))
    assert [c.field for c in found.changed["a"]] == ["description"]
    assert found.actions() == {"a": "keep", "b": "keep", "c": "keep", "e": "skip"}
    assert "'b', failed in run 'p1'" in found.plan["e"].reason
    assert found.plan["a"].reason == "only description edited; mastered in run 'p1'"
    snap = _snapshot(three, {"a": "mastered", "b": "locked"})  # a run stopped by its stage budget
    assert diff_graphs(snap, load_curriculum(three)).actions()["b"] == "schedule"


def test_what_cannot_be_continued_is_named(three: Path) -> None:
    snap = _snapshot(three, MASTERED, run_status="running")
    three.write_text(three.read_text().replace("model: {base: tiny-random}", "model: {base: tiny-random, lora: {r: 4}}"))
    blockers = diff_graphs(snap, load_curriculum(three)).blockers
    assert len(blockers) == 2 and "model.lora.r changed" in blockers[0] and "--resume p1" in blockers[1]


def test_an_inherited_node_that_no_longer_holds_is_rehearsed(three: Path) -> None:
    from curriculum.stats.evidence import Evidence
    from curriculum.policies.registry import make_policy
    from curriculum.policies.runstate import RunState
    from flows.inherit import Lineage

    loaded = load_curriculum(three)
    st = RunState.start(loaded.spec, loaded.graph)
    right = Evidence({(1, line): 1.0 for line in range(1, 9)}, True, 8)
    for n in ("a", "b"):
        st.status[n] = "mastered"
        st.mastered_on[n] = right
    keep = {"action": "keep", "reason": "unchanged", "status": "mastered"}
    lineage = Lineage("p1", None, {"a": keep, "b": keep, "c": {"action": "schedule", "reason": "new", "status": None}},
                      {"a": ("p1", 2), "b": ("p1", 0)})
    wrong = Evidence({k: 0.0 for k in right.items}, True, 8)
    pol = make_policy("gated")
    decisions = lineage.recheck(st, pol, {"a": wrong, "b": right, "c": None})
    assert [(d.node_id, d.action) for d in decisions] == [("a", "inherit"), ("b", "inherit"), ("a", "rehearse")]
    assert decisions[-1].reason.startswith("inherited from run 'p1', re-checked on its adapter: forgetting: 1.000 → 0.000")
    assert decisions[0].signals["mastered_on"] == {"run": "p1", "stage": 2} and decisions[1].score_after == 1.0
    assert st.status["a"] == "forgotten" and st.pending_rehearsal == ["a"]
    step = pol.next_step(st)  # a's data rides along with the first stage the run trains
    assert (step.node_id, step.rehearse_nodes) == ("c", ["a"])


def test_task_yamls_are_in_the_file_snapshot(tmp_path: Path) -> None:
    """An lm-eval task YAML kept beside the curriculum is one of its probe files: hashed for resume and --from."""
    from curriculum.runs.inputs import input_files
    from curriculum.runs.lineage import file_rows
    from curriculum.loading.validate import load_curriculum
    from helpers import probe_kinds_graph

    loaded = load_curriculum(probe_kinds_graph(tmp_path))
    names = [name for name, _, _ in input_files(loaded)]
    assert {"tasks/arc.yaml", "tasks/gen.yaml", "tasks/ll.yaml"} <= set(names)
    assert {r["path"] for r in file_rows(loaded) if r["node_id"] == "t"} >= {"tasks/arc.yaml", "tasks/gen.yaml"}


def test_what_a_task_yaml_reads_is_in_the_file_snapshot(tmp_path: Path) -> None:
    """Its `data_files` and `include:` YAMLs too: an edited data file of an lm-eval probe is a changed probe for
    resume and --from, as an edited items file is."""
    from curriculum.runs.inputs import changed_files, input_files
    from curriculum.runs.lineage import file_rows
    from curriculum.loading.taskfiles import task_reads
    from curriculum.loading.validate import load_curriculum
    from helpers import probe_kinds_graph

    graph = probe_kinds_graph(tmp_path)
    tasks = tmp_path / "tasks"
    (tasks / "base.yaml").write_text("dataset_path: json\ndataset_kwargs:\n  data_files: [gen.jsonl, ../k.jsonl]\n"
                                     "process_docs: !function utils.docs\n")
    (tasks / "utils.py").write_text("def docs(dataset):\n    return dataset\n")  # validate looks for it
    (tasks / "ll.yaml").write_text("include: base.yaml\n" + (tasks / "ll.yaml").read_text().replace(
        "dataset_kwargs:\n  data_files: {test: gen.jsonl}\n", ""))
    assert task_reads(tmp_path, "tasks/ll.yaml") == {"include": ["tasks/base.yaml"], "data_files": ["tasks/gen.jsonl", "k.jsonl"],
                                                     "functions": ["tasks/utils.py"]}
    assert task_reads(tmp_path, "tasks/arc.yaml") == {"data_files": ["tasks/arc.jsonl"]}
    loaded = load_curriculum(graph)
    rows = {(r["node_id"], r["file_key"]): r["path"] for r in file_rows(loaded)}
    arc = next(k for (n, k), path in rows.items() if path == "tasks/arc.yaml")
    assert rows[("t", f"{arc} data_files[0]")] == "tasks/arc.jsonl"
    before = {name: sha for name, sha, _ in input_files(loaded)}
    assert {"tasks/arc.jsonl", "tasks/gen.jsonl", "tasks/base.yaml", "k.jsonl"} <= set(before)
    with (tasks / "arc.jsonl").open("a") as f:
        f.write('{"question": "What is cold?", "choices": {"text": ["frost", "sun"], "label": ["A", "B"]}, "answerKey": "A"}\n')
    assert changed_files(before, input_files(load_curriculum(graph))) == ["tasks/arc.jsonl"]
    (tasks / "utils.py").write_text("def docs(dataset):\n    return dataset.select(range(1))\n")  # the helper edited
    assert changed_files(before, input_files(load_curriculum(graph))) == ["tasks/arc.jsonl", "tasks/utils.py"]
    # a binary data file is hashed, its text not kept; a run recorded before such files were read resumes
    (tasks / "extra.parquet").write_bytes(b"PAR1\x00\xff\xfe")
    (tasks / "base.yaml").write_text((tasks / "base.yaml").read_text().replace("../k.jsonl]", "../k.jsonl, extra.parquet]")
                                     .replace("dataset_path: json", "dataset_path: parquet"))  # json would refuse it
    (tasks / "ll.yaml").write_text((tasks / "ll.yaml").read_text().replace("dataset_path: json\n", ""))
    now = {name: text for name, _, text in input_files(load_curriculum(graph))}
    assert "tasks/extra.parquet" in now and now["tasks/extra.parquet"] is None and now["tasks/gen.jsonl"] is not None
    older = {name: sha for name, sha, _ in input_files(load_curriculum(graph)) if not name.endswith(".parquet")}
    assert changed_files(older, input_files(load_curriculum(graph))) == []


def test_task_reads_follows_lm_evals_merge(tmp_path: Path) -> None:
    """Includes (a name or a list, from another folder) merged first, the file's own keys over them, and the
    merged `data_files` read from the top task YAML's folder, as the bridge reads them; globs expanded."""
    from curriculum.loading.taskfiles import task_reads
    from probes.lmeval_bridge import file_task

    (tmp_path / "common").mkdir()
    (tmp_path / "tasks").mkdir()
    (tmp_path / "common" / "base.yaml").write_text("dataset_path: json\ndataset_kwargs: {data_files: {test: d.jsonl}}\n")
    (tmp_path / "common" / "more.yaml").write_text("output_type: multiple_choice\n")
    for name in ("d.jsonl", "e1.jsonl", "e2.jsonl"):
        (tmp_path / "tasks" / name).write_text("{}\n")
    (tmp_path / "tasks" / "t.yaml").write_text("include: [../common/base.yaml, ../common/more.yaml]\ntask: t\n")
    assert task_reads(tmp_path, "tasks/t.yaml") == {"include": ["common/base.yaml", "common/more.yaml"],
                                                    "data_files": ["tasks/d.jsonl"]}
    read = file_task(tmp_path / "tasks" / "t.yaml")["dataset_kwargs"]["data_files"]["test"]
    assert Path(read).resolve() == (tmp_path / "tasks" / "d.jsonl").resolve()  # the file the probe reads
    (tmp_path / "tasks" / "u.yaml").write_text("include: ../common/base.yaml\ntask: u\n"
                                               "dataset_kwargs: {data_files: 'e*.jsonl'}\n")
    assert task_reads(tmp_path, "tasks/u.yaml") == {"include": ["common/base.yaml"],
                                                    "data_files": ["tasks/e1.jsonl", "tasks/e2.jsonl"]}
    assert task_reads(tmp_path, "tasks/missing.yaml") == {}
