"""Fuzzing the validator and the JSONL reader: whatever a user writes, a pass or one-line file:line:col errors.

Bounded so the suite stays quick (a few hundred examples, a deadline per example that catches a hang);
every finding so far is also a regular case under tests/broken or below, so it stays fixed without luck.
"""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from curriculum.graph import spec
from curriculum.cli.app import app
from curriculum.loading.jsonl import read_records
from curriculum.loading.validate import check_curriculum

LINE = re.compile(r"^(?P<file>[^\n]+?):(?P<line>[1-9]\d*):(?P<col>[1-9]\d*): \S[^\n]*$")
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0"))  # set it (e.g. 2000) to hunt with fresh random inputs
FUZZ = settings(max_examples=EXAMPLES or 100, deadline=timedelta(seconds=10), database=None, derandomize=not EXAMPLES,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
DATA = {
    "a.jsonl": '{"prompt": "What is a?", "answer": "A is a."}\n{"prompt": "And a?", "answer": "Still a."}\n',
    "p.jsonl": '{"prompt": "Say a otherwise.", "reference": "It is a."}\n',
    "c.jsonl": '{"prompt": "Which is a?", "choices": ["a", "b"], "answer": 0}\n',
}
KEYS = sorted({*spec.Curriculum.model_fields, *spec.Node.model_fields, *spec.ProbeSpec.model_fields,
               *spec.TrainConfig.model_fields, *spec.GateConfig.model_fields, *spec.ModelConfig.model_fields,
               "from", "items", "prompt", "answer"})


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    for name, text in DATA.items():
        (root / name).write_text(text)
    (root / "warm.yaml").write_text("curriculum: t\nmodel: {base: tiny-random}\nnodes: {a: {layer: definition, data: a.jsonl}}\n")
    loaded, problems = check_curriculum(root / "warm.yaml")  # loads the tokenizer once, outside every deadline
    assert loaded is not None, problems
    return root


def _validate(work: Path, text: str | bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run `curriculum validate` on the text; it passes, or fails with only file:line:col lines, never raises."""
    graph = work / "graph.yaml"
    graph.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    monkeypatch.chdir(work)
    result = CliRunner().invoke(app, ["validate", "graph.yaml"])
    assert result.exit_code in (0, 1), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if result.exit_code == 1:
        lines = result.stderr.splitlines()
        assert lines and lines[-1].endswith("nothing was run or written.")
        assert lines[:-1], "an error without a line"
        for line in lines[:-1]:
            assert LINE.match(line), line


scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**20), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["a.jsonl", "p.jsonl", "c.jsonl", "definition", "transfer",
                                                           "paraphrase", "lmeval", "auto", "tiny-random", "a", "b"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=4), max_leaves=20)
node_ids = st.sampled_from(["a", "b", "c", "кошка.определение", "b.remedial"]) | st.text(min_size=1, max_size=8)


@st.composite
def curricula(draw) -> dict:
    """Mostly-plausible curricula: the right keys, wrong values here and there, references that may dangle."""
    ids = draw(st.lists(node_ids, min_size=1, max_size=4, unique=True))
    nodes = {}
    for node_id in ids:
        node = {"layer": draw(st.sampled_from([layer.value for layer in spec.Layer]) | scalars),
                "data": draw(st.sampled_from(["a.jsonl", "p.jsonl", "missing.jsonl", "a\x00.jsonl", "x" * 300,
                                              ".", "/", "../", "~", "a.jsonl/"]) | scalars)}
        if draw(st.booleans()):
            node["requires"] = draw(st.lists(st.sampled_from(ids) | node_ids, max_size=3))
        if draw(st.booleans()):
            node["on_fail"] = draw(st.sampled_from(ids) | node_ids)
        if draw(st.booleans()):
            node["entered_by"] = draw(st.just("on_fail") | scalars)
        if draw(st.booleans()):
            node["probes"] = draw(st.lists(st.fixed_dictionaries(
                {"kind": st.sampled_from(["paraphrase", "transfer", "lmeval"]) | scalars,
                 "items": st.sampled_from(["p.jsonl", "c.jsonl", "a.jsonl"]) | scalars}), max_size=2))
        for key in draw(st.lists(st.sampled_from(["train", "gate", "facet", "description"]), max_size=2)):
            node[key] = draw(values)
        nodes[node_id] = node
    base = draw(st.sampled_from(["tiny-random", "tiny-random", "./nowhere", "org/model", "x" * 300, "a\x00b", ".", ""]))
    doc = {"curriculum": draw(st.text(max_size=6) | scalars), "model": {"base": base}, "nodes": nodes}
    for key in draw(st.lists(st.sampled_from(["defaults", "policy", "profiles", "lexicon", "model"]), max_size=2)):
        doc[key] = draw(values)
    return doc


@st.composite
def mutated(draw, docs) -> str:
    """A dumped curriculum with a few characters inserted, deleted or swapped for YAML punctuation."""
    text = yaml.safe_dump(draw(docs), allow_unicode=True, sort_keys=False)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        piece = draw(st.sampled_from(["&x ", "*x", "[", "]", "{", "}", ":", "- ", "\n", "\t", "'", '"', "!!int ",
                                      "<<: *x\n", "? ", "#", "%YAML 1.1\n", "---\n"]) | st.text(max_size=3))
        if draw(st.booleans()):
            text = text[:at] + piece + text[at:]
        else:
            text = text[:at] + text[at + len(piece):]
    return text


@FUZZ
@given(text=st.text(max_size=300))
def test_fuzz_any_text(work: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    _validate(work, text, monkeypatch)


@FUZZ
@given(raw=st.binary(max_size=200))
def test_fuzz_any_bytes(work: Path, monkeypatch: pytest.MonkeyPatch, raw: bytes) -> None:
    _validate(work, raw, monkeypatch)


@FUZZ
@given(text=mutated(curricula()))
def test_fuzz_plausible_curricula(work: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    _validate(work, text, monkeypatch)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=3), max_leaves=10)
records = st.fixed_dictionaries({}, optional={"prompt": json_values | st.text(max_size=30),
                                              "answer": json_values | st.integers(-2, 4),
                                              "reference": json_values | st.text(max_size=30),
                                              "choices": st.lists(st.text(max_size=6) | json_values, max_size=4),
                                              "references": json_values, "facts": json_values})
jsonl_lines = st.one_of(records.map(lambda r: json.dumps(r, ensure_ascii=False)), records.map(json.dumps),
                        st.text(max_size=40), json_values.map(json.dumps), st.just(""), st.just("   "))


@FUZZ
@given(lines=st.lists(jsonl_lines, max_size=6), ending=st.sampled_from(["\n", "\r\n"]),
       model=st.sampled_from([spec.TrainExample, spec.ParaphraseItem, spec.ChoiceItem]))
def test_fuzz_jsonl_reader(work: Path, lines: list[str], ending: str, model) -> None:
    path = work / "fuzz.jsonl"
    text = ending.join(lines)
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    got, problems = read_records(path, model, "fuzz.jsonl")
    assert got or problems
    last = text.count("\n") + 1  # lines end at newlines only: U+2028 and friends may sit in a JSON string
    for problem in problems:
        assert LINE.match(str(problem)), str(problem)
        assert problem.line <= last
    for record in got:
        assert isinstance(record.value, model) and 1 <= record.line <= last


@FUZZ
@given(raw=st.binary(max_size=200))
def test_fuzz_jsonl_bytes(work: Path, raw: bytes) -> None:
    path = work / "fuzz.jsonl"
    path.write_bytes(raw)
    _, problems = read_records(path, spec.TrainExample, "fuzz.jsonl")
    for problem in problems:
        assert LINE.match(str(problem)), str(problem)
