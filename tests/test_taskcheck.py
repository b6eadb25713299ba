"""What an lm-eval task YAML beside a curriculum will read, checked by validation at file:line:col: includes, local
data files (JSON lines parsed), `!function` modules (parsed, never imported); a sound task YAML passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from curriculum.loading.taskcheck import task_file_problems, unknown_task_message
from helpers import probe_kinds_graph, write_jsonl


def _lines(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.chdir(path.parent)
    return [str(p) for p in task_file_problems(path)]


def test_the_sound_task_yamls_of_the_probe_kinds_graph_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    probe_kinds_graph(tmp_path)
    for name in ("arc", "gen", "ll"):
        assert _lines(tmp_path / "tasks" / f"{name}.yaml", monkeypatch) == []


def test_includes_functions_and_data_are_read_as_lm_eval_reads_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "base.yaml").write_text("dataset_path: json\ndataset_kwargs:\n  data_files: {test: docs.jsonl}\n"
                                        "process_docs: !function utils.process_docs\n")
    (tmp_path / "utils.py").write_text("import re\n\ndef other(docs):\n    return docs\n")
    (tmp_path / "docs.jsonl").write_text('{"q": 1}\n{"q": 2,,}\n')
    (tmp_path / "task.yaml").write_text("include: [base.yaml, gone.yaml]\ntask: t\n"
                                        "doc_to_text: !function utils.other\n")
    assert _lines(tmp_path / "task.yaml", monkeypatch) == [
        "base.yaml:4:15: !function 'utils.process_docs': utils.py defines no 'process_docs'",
        "task.yaml:1:22: include 'gone.yaml' not found (looked in .)",
        "docs.jsonl:2:9: not a JSON line: Expecting property name enclosed in double quotes",
    ]


def test_json_lines_in_a_json_file_pass_as_datasets_reads_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """lm-eval reads data files with `datasets`, which reads JSON lines whatever the file's name: so does validation.
    What `datasets` cannot read still fails where it breaks."""
    write_jsonl(tmp_path / "mc_data.json", [{"q": f"question {i}", "a": i % 2} for i in range(6)])
    (tmp_path / "task.yaml").write_text("task: t\ndataset_path: json\ndataset_kwargs: {data_files: {test: mc_data.json}}\n")
    assert _lines(tmp_path / "task.yaml", monkeypatch) == []
    (tmp_path / "mc_data.json").write_text('{"q": 1}\n{"q": 2}\n{"q": 3,,}\n')
    assert _lines(tmp_path / "task.yaml", monkeypatch) == [
        "mc_data.json:3:9: not a JSON line: Expecting property name enclosed in double quotes"]
    (tmp_path / "mc_data.json").write_text('[{"q": 1},\n {"q": 2}\n')
    assert _lines(tmp_path / "task.yaml", monkeypatch) == ["mc_data.json:3:1: not JSON: Expecting ',' delimiter"]


def test_a_local_key_wins_over_an_include_and_a_cycle_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_jsonl(tmp_path / "mine.jsonl", [{"q": 1}])
    (tmp_path / "base.yaml").write_text("include: task.yaml\ndataset_path: json\n"
                                        "dataset_kwargs: {data_files: {test: gone.jsonl}}\n")
    (tmp_path / "task.yaml").write_text("include: base.yaml\ntask: t\ndataset_kwargs: {data_files: {test: mine.jsonl}}\n")
    assert _lines(tmp_path / "task.yaml", monkeypatch) == [
        "base.yaml:1:10: include 'task.yaml' includes itself (an include cycle)"]


def test_unknown_installed_task_names_its_nearest_neighbours() -> None:
    assert unknown_task_message("arc_easyy", ["arc_challenge", "arc_easy", "hellaswag"]) == (
        "no installed lm-eval task named 'arc_easyy' (did you mean arc_easy?); a task YAML beside the curriculum "
        "ends in .yaml")
