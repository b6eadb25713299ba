"""Validation: every broken graph under tests/broken gives its exact file:line:col errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import ROOT
from curriculum.cli.app import app
from curriculum.graph.problems import CurriculumError
from curriculum.loading.validate import load_curriculum

BROKEN = ROOT / "tests" / "broken"
CASES = sorted(p.name for p in BROKEN.iterdir() if (p / "expect.txt").exists())


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def broken_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("broken") / "broken"
    shutil.copytree(BROKEN, dest)
    return dest


def test_enough_cases() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", CASES)
def test_broken_graph(case: str, broken_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(broken_copy)
    before = _tree(broken_copy)
    result = CliRunner().invoke(app, ["validate", f"{case}/graph.yaml"])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), "a traceback escaped"
    expected = (broken_copy / case / "expect.txt").read_text().splitlines()
    got = [line for line in result.stderr.splitlines() if "nothing was run or written" not in line]
    assert got == expected
    assert all(line.startswith(f"{case}/") for line in got)
    assert _tree(broken_copy) == before, "validation wrote something"


def test_cli_process_exit_code_and_no_traceback(broken_copy: Path) -> None:
    for case in ("binary_garbage", "cycle", "malformed_jsonl"):
        proc = subprocess.run(
            [sys.executable, "-m", "curriculum.cli.app", "validate", f"{case}/graph.yaml"],
            cwd=broken_copy, capture_output=True, text=True,
        )
        assert proc.returncode == 1
        assert "Traceback" not in proc.stderr
        assert proc.stderr.startswith(f"{case}/graph.yaml:") or proc.stderr.startswith(f"{case}/train.jsonl:")


def test_library_call_raises_with_every_problem(broken_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(broken_copy)
    with pytest.raises(CurriculumError) as info:
        load_curriculum("many_problems/graph.yaml")
    assert len(info.value.problems) == 3
    assert {p.line for p in info.value.problems} == {5, 11, 12}


def test_bundled_graph_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(app, ["validate", "graphs/hyperwords.yaml"])
    assert result.exit_code == 0, result.output
    assert "valid — curriculum 'hyperwords'" in result.stdout
    assert "roots:" in result.stdout and "branches:" in result.stdout
    loaded = load_curriculum(ROOT / "graphs" / "hyperwords.yaml")
    remedial = [n for n, node in loaded.spec.nodes.items() if node.entered_by == "on_fail"]
    assert remedial, "the bundled graph shows an on_fail branch"
    assert all(loaded.examples[n] for n in loaded.spec.nodes)


def test_overrides_merge_over_defaults() -> None:
    loaded = load_curriculum(ROOT / "graphs" / "hyperwords.yaml")
    cur = loaded.spec
    remedial = cur.train_config("fogwhisperfrost.transfer.remedial")
    assert remedial.epochs == 4 and remedial.lr == cur.defaults.train.lr
    assert cur.gate_config("emberlull.counterexample").min_score == 0.714 and cur.defaults.gate.min_score == "auto"
    assert cur.gate_config("emberlull.counterexample").max_attempts == cur.defaults.gate.max_attempts


def test_ten_thousand_node_graph_is_valid(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "p", "answer": "a"}\n')
    lines = ["curriculum: big", "model: {base: tiny-random}", "nodes:"]
    for i in range(10_000):
        req = "" if i % 100 == 0 else f", requires: [n{i - 1}" + (f", n{i - 100}]" if i >= 100 else "]")
        lines.append(f"  n{i}: {{layer: definition, data: d.jsonl{req}}}")
    graph = tmp_path / "big.yaml"
    graph.write_text("\n".join(lines) + "\n")
    t0 = time.perf_counter()
    result = CliRunner().invoke(app, ["validate", str(graph)])
    elapsed = time.perf_counter() - t0
    print(f"validated 10,000 nodes in {elapsed:.2f} s")
    assert result.exit_code == 0, result.output
    assert "10000 nodes" in result.stdout
    assert "depth:    199" in result.stdout
    assert len(result.stdout.splitlines()) <= 24, "summary must fit one screen"


def test_schema_file_matches_models() -> None:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    assert result.stdout == (ROOT / "graphs" / "schema.json").read_text(), "run: curriculum schema -o graphs/schema.json"
    head = (ROOT / "graphs" / "hyperwords.yaml").read_text().splitlines()[0]
    assert head == "# yaml-language-server: $schema=schema.json"


def test_profile_selects_named_nodes_their_requirements_and_remedial_branches() -> None:
    from curriculum.loading.validate import select_profile

    full = load_curriculum(ROOT / "graphs" / "hyperwords.yaml")
    demo = load_curriculum(ROOT / "graphs" / "hyperwords.yaml", profile="demo")
    assert set(demo.spec.nodes) == {
        "fogwhisperfrost.definition", "fogwhisperfrost.causality", "fogwhisperfrost.transfer",
        "fogwhisperfrost.transfer.remedial", "emberlull.definition", "rainhushhome.definition",
        "emberhomefrost.definition",
    }
    assert list(demo.spec.nodes) == [n for n in full.spec.nodes if n in demo.spec.nodes]  # the YAML's order
    assert set(demo.graph) == set(demo.spec.nodes) == set(demo.examples) == set(demo.probe_items)
    assert demo.sha256 == full.sha256 and demo.profile == "demo" and full.profile is None
    with pytest.raises(CurriculumError, match="unknown profile 'nope' \\(profiles: demo\\)"):
        select_profile(full, "nope")


def test_run_with_unknown_profile_exits_1_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(app, ["run", str(ROOT / "graphs" / "hyperwords.yaml"), "--profile", "nope",
                                      "--db", str(tmp_path / "w.duckdb"), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 1 and "unknown profile 'nope' (profiles: demo)" in result.stderr
    assert not any(tmp_path.iterdir())


def test_lint_warns_of_one_answer_probes_and_too_few_items(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers import tiny_graph

    monkeypatch.chdir(tmp_path)
    graph = tiny_graph(tmp_path)  # a's and b's choice probes: every item answers 'a still lake at dawn'; 3 paraphrase items
    graph.write_text(graph.read_text().replace("  gate: {min_score: 0.5, max_attempts: 2}",
                                               "  gate: {min_score: 0.5, max_attempts: 2, confidence: 0.95}"))
    result = CliRunner().invoke(app, ["validate", str(graph)])
    assert result.exit_code == 0, result.output
    warnings = [line.strip() for line in result.stdout.splitlines() if "warning:" in line]
    one_answer = [w for w in warnings if "has the answer 'a still lake at dawn'" in w]
    assert len(one_answer) == 2 and one_answer[0].startswith("graph.yaml:")
    assert sum("cannot tell a score" in w for w in warnings) == 2
    assert "warnings: 4" in result.stdout
    # spread answers and enough items: no warning
    for node in ("a", "b"):
        (tmp_path / f"{node}_choice.jsonl").write_text("".join(
            f'{{"prompt": "Which fits {node} {i}?", "choices": ["x{i}", "y", "z"], "answer": {i % 3}}}\n' for i in range(3)))
    graph.write_text(graph.read_text().replace("confidence: 0.95", "confidence: 0.6"))
    result = CliRunner().invoke(app, ["validate", str(graph)])
    assert result.exit_code == 0 and "warning:" not in result.stdout, result.stdout


@pytest.mark.parametrize("case", ["alias_bomb", "deep_nesting"])
def test_hostile_yaml_is_refused_in_under_a_second(case: str, broken_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from curriculum.loading.validate import check_curriculum

    monkeypatch.chdir(broken_copy)
    t0 = time.perf_counter()
    loaded, problems = check_curriculum(f"{case}/graph.yaml")
    elapsed = time.perf_counter() - t0
    assert loaded is None and len(problems) == 1
    assert elapsed < 1.0, f"{case} took {elapsed:.2f} s"


def test_alias_bomb_of_any_size_stops_at_the_bound(tmp_path: Path) -> None:
    """Twelve levels of nine aliases (9**12 values expanded) cost no more than nine levels."""
    from curriculum.loading.validate import check_curriculum

    lines = ["curriculum: t", "x0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * 9) + "]" for i in range(1, 13)]
    (tmp_path / "g.yaml").write_text("\n".join(lines) + "\nnodes: {a: {layer: definition, data: d.jsonl}}\n")
    t0 = time.perf_counter()
    _, problems = check_curriculum(tmp_path / "g.yaml")
    assert time.perf_counter() - t0 < 1.0
    assert [p.message.split(" expands")[0] for p in problems] == ["YAML alias '*x4'"]


def test_aliases_and_merge_keys_within_the_bound_still_work(tmp_path: Path) -> None:
    from curriculum.loading.validate import check_curriculum

    (tmp_path / "d.jsonl").write_text('{"prompt": "p", "answer": "a"}\n')
    (tmp_path / "g.yaml").write_text(
        "curriculum: t\nmodel: {base: tiny-random}\n"
        "defaults: {train: &t {epochs: 3, lr: 0.003}}\n"
        "nodes:\n  a: {layer: definition, data: d.jsonl, train: *t}\n"
        "  b: {layer: causality, data: d.jsonl, requires: [a], train: {<<: *t, epochs: 5}}\n")
    loaded, problems = check_curriculum(tmp_path / "g.yaml")
    assert problems == [] and loaded is not None
    assert loaded.spec.train_config("a").epochs == 3 and loaded.spec.train_config("b").epochs == 5
    assert loaded.spec.train_config("b").lr == 0.003


def test_run_with_a_missing_base_exits_1_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers import tiny_graph

    work = tmp_path / "work"
    work.mkdir()
    graph = tiny_graph(work)
    graph.write_text(graph.read_text().replace("base: tiny-random", "base: ./models/mine"))
    monkeypatch.chdir(work)
    before = _tree(work)
    result = CliRunner().invoke(app, ["run", "graph.yaml", "--db", "w.duckdb", "--runs-dir", "runs"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert result.stderr.startswith("graph.yaml:2:15: model.base: './models/mine' is not a folder"), result.stderr
    assert _tree(work) == before, "a run with an unusable base wrote something"


def test_hub_id_outside_the_cache_online_is_a_warning_not_a_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers import tiny_graph

    graph = tiny_graph(tmp_path)
    graph.write_text(graph.read_text().replace("base: tiny-random", "base: some-org/never-downloaded-model"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    result = CliRunner().invoke(app, ["validate", "graph.yaml"])
    assert result.exit_code == 0, result.output
    assert "graph.yaml:2:15: warning: hub model 'some-org/never-downloaded-model' is not in the local cache" in result.stdout


def test_validation_tokenizer_counts_what_training_counts() -> None:
    """The cheap tokenizer validation loads (no torch import) gives the very ids training's AutoTokenizer gives."""
    from curriculum.models.bases import TINY, tokenizer_for_checks
    from curriculum.models.chat import pair_ids
    from curriculum.models.load import load_tokenizer

    cheap, training = tokenizer_for_checks(TINY), load_tokenizer(TINY)
    for prompt, answer in [("What is fogwhisperfrost?", "A hush of frost in the fog."),
                           ("Что такое кошка?", "Кошка — это зверь, который мурлычет. 🐱"),
                           ("  spaces\tand\nnewlines  ", "<|im_end|> is only text here"),
                           ("日本語のプロンプト", "العربية ✓ ñ ß ﬁ")]:
        assert pair_ids(cheap, prompt, answer) == pair_ids(training, prompt, answer)


def _cyrillic_graph(root: Path) -> Path:
    """Node ids in Russian, as the seeds are written: a chain, an on_fail branch, a profile, every probe kind."""
    from helpers import write_jsonl

    for name, word in (("def", "мурлыка"), ("cause", "мурлыка мурлыка"), ("far", "далеко"), ("fix", "снова")):
        write_jsonl(root / f"{name}.jsonl", [{"prompt": f"Что такое кошка {i}?", "answer": f"Кошка {word} {i}."}
                                             for i in range(4)])
        write_jsonl(root / f"{name}_para.jsonl", [{"prompt": f"Скажи иначе {name} {i}.", "reference": "Пушистый зверь."}
                                                  for i in range(2)])
    write_jsonl(root / "mc.jsonl", [{"prompt": f"Кто мурлычет {i}?", "choices": ["кошка", "рыба"], "answer": i % 2}
                                    for i in range(4)])
    graph = root / "кошки.yaml"
    graph.write_text(
        "curriculum: кошки\nmodel: {base: tiny-random}\n"
        "defaults:\n  train: {epochs: 1, lr: 0.01, batch_size: 4, max_length: 96, max_steps: 2}\n"
        "  gate: {min_score: 0.0, max_attempts: 1}\n"
        "profiles: {демо: [кошка.перенос]}\n"
        "nodes:\n"
        "  кошка.определение:\n    layer: definition\n    data: def.jsonl\n"
        "    probes: [{kind: paraphrase, items: def_para.jsonl}, {kind: lmeval, items: mc.jsonl}]\n"
        "  кошка.причина:\n    layer: causality\n    requires: [кошка.определение]\n    data: cause.jsonl\n"
        "    probes: [{kind: transfer, items: mc.jsonl, scoring: raw}]\n"
        "  кошка.перенос:\n    layer: transfer\n    requires: [кошка.причина]\n    data: far.jsonl\n"
        "    on_fail: кошка.перенос.повтор\n    gate: {min_score: 1.0, keep_progress: false}\n"
        "    probes: [{kind: paraphrase, items: far_para.jsonl}]\n"
        "  кошка.перенос.повтор:\n    layer: analogy\n    entered_by: on_fail\n    data: fix.jsonl\n",
        encoding="utf-8")
    return graph


def test_node_ids_in_any_script_are_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    graph = _cyrillic_graph(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["validate", graph.name])
    assert result.exit_code == 0, result.output
    assert "valid — curriculum 'кошки', 4 nodes" in result.stdout
    assert "кошка.перенос -> кошка.перенос.повтор" in result.stdout, result.stdout
    demo = load_curriculum(graph, profile="демо")
    assert list(demo.spec.nodes) == ["кошка.определение", "кошка.причина", "кошка.перенос", "кошка.перенос.повтор"]
    assert demo.graph["кошка.перенос"]["кошка.перенос.повтор"]["kind"] == "on_fail"


def test_a_run_keeps_node_ids_in_any_script(prefect_harness, tmp_path: Path) -> None:
    """The ids reach the warehouse, the lm-eval task names, the Prefect task names and the report unchanged."""
    from flows.curriculum_flow import curriculum
    from warehouse.db import Warehouse

    graph = _cyrillic_graph(tmp_path)
    db = tmp_path / "w.duckdb"
    run_id = curriculum(graph=str(graph), warehouse=str(db), runs_dir=str(tmp_path / "runs"), run_id="кошки-1")
    wh = Warehouse(db)
    _, stages = wh.query("SELECT DISTINCT node_id FROM stages WHERE node_id <> '*' ORDER BY 1")
    assert stages == [("кошка.перенос",), ("кошка.перенос.повтор",)]  # the first two pass their 0.0 gate untrained
    _, kinds = wh.query("SELECT DISTINCT node_id, probe_kind FROM probe_results WHERE node_id = ? ORDER BY 2",
                        ["кошка.определение"])
    assert kinds == [("кошка.определение", "lmeval"), ("кошка.определение", "paraphrase")]
    _, branch = wh.query("SELECT reason FROM decisions WHERE node_id = ? AND action = 'branch'", ["кошка.перенос"])
    assert branch and "taking remedial branch 'кошка.перенос.повтор'" in branch[0][0]
    assert (tmp_path / "runs" / "кошки-1" / "stage-1" / "adapter_model.safetensors").is_file()
    assert "кошка.перенос.повтор" in (tmp_path / "runs" / run_id / "report.html").read_text(encoding="utf-8")


def test_fresh_cache_validates_with_the_gguf_tokenizer_and_converts_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before the bundled model is converted, validation reads its tokenizer from the GGUF: same ids, nothing written."""
    from curriculum.models.bases import BUNDLED, tokenizer_for_checks
    from curriculum.models.chat import pair_ids
    from curriculum.models.load import load_tokenizer

    training = load_tokenizer(BUNDLED)  # from the converted cache
    monkeypatch.setenv("CURRICULUM_CACHE", str(tmp_path / "cache"))
    fresh = tokenizer_for_checks(BUNDLED)
    assert not (tmp_path / "cache").exists()
    for prompt, answer in [("What is emberlull?", "The hush after a fire."), ("Что такое кошка?", "Зверь. 🐱")]:
        assert pair_ids(fresh, prompt, answer) == pair_ids(training, prompt, answer)


def test_lengths_count_hyperwords_as_one_token_when_new_tokens_is_on(tmp_path: Path) -> None:
    """A pair that fits only once each hyperword is one token: valid with new_tokens, too long without."""
    from helpers import tiny_graph, write_jsonl
    from curriculum.loading.validate import check_curriculum

    graph = tiny_graph(tmp_path, extra_yaml="lexicon:\n  - {word: zorblatquen, parts: [zor, blat, quen], gloss: a hum}\n")
    write_jsonl(tmp_path / "a.jsonl", [{"prompt": "Say it.", "answer": " ".join(["zorblatquen"] * 24)}])
    _, problems = check_curriculum(graph)
    assert [p.message.split(":")[0] for p in problems] == ["example too long"], problems
    assert problems[0].file.endswith("a.jsonl") and problems[0].line == 1
    graph.write_text(graph.read_text().replace("model: {base: tiny-random}",
                                               "model: {base: tiny-random, new_tokens: {from: lexicon}}"))
    loaded, problems = check_curriculum(graph)
    assert problems == [] and loaded is not None
