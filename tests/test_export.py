"""Taking a run away: `curriculum export` of finished tiny runs (a PEFT folder peft reloads, a merged model
plain transformers loads with the same logits, hyperword tokens carried), the artifacts each run publishes
in Prefect, and the face: the mastery table on an 80-column terminal, the help."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from conftest import ROOT
from curriculum.cli.app import app
from helpers import tiny_graph
from warehouse.db import Warehouse

ATOL = 1e-4  # float32 on the CPU: merged weights vs LoRA applied on the fly differ by rounding only
TEXT = "The a-word is a still lake at dawn. What is a-word?"


@pytest.fixture(scope="module")
def runs(prefect_harness, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Three runs in one warehouse: 'plain' (one stage kept), 'words' (hyperword tokens, one stage kept),
    'none' (a baseline only: no adapter kept)."""
    from flows.curriculum_flow import curriculum

    root = tmp_path_factory.mktemp("export")
    (root / "plain").mkdir()
    (root / "words").mkdir()
    plain = tiny_graph(root / "plain")
    words = tiny_graph(root / "words", extra_yaml="lexicon:\n  - {word: a-word, parts: [still, lake], gloss: a quiet lake}\n")
    words.write_text(words.read_text().replace(
        "model: {base: tiny-random}", "model: {base: tiny-random, new_tokens: {from: lexicon, init: compositional}}"))
    db, runs_dir = root / "w.duckdb", root / "runs"
    flow_runs = {}
    for run_id, graph, stages in (("plain", plain, 1), ("words", words, 1), ("none", plain, 0)):
        state = curriculum(graph=str(graph), warehouse=str(db), runs_dir=str(runs_dir), policy="fixed",
                           max_stages=stages, run_id=run_id, return_state=True)
        assert state.is_completed(), state.message
        flow_runs[run_id] = state.state_details.flow_run_id
    return {"root": root, "db": db, "runs": runs_dir, "flow_runs": flow_runs}


def _export(runs: dict, run_id: str, out: Path, *extra: str):
    return CliRunner().invoke(app, ["export", run_id, str(out), "--db", str(runs["db"]), *extra])


def _logits(model, tokenizer, text: str = TEXT) -> torch.Tensor:
    with torch.no_grad():
        return model(**tokenizer(text, return_tensors="pt")).logits


def _final_stage(runs: dict, run_id: str) -> Path:
    from warehouse.records import final_adapter

    return Path(final_adapter(Warehouse(runs["db"]), run_id)[1])


def test_peft_export_reloads_with_peft_and_carries_a_model_card(runs: dict, tmp_path: Path) -> None:
    from peft import PeftModel

    from curriculum.models.load import TINY, load_base
    from curriculum.models.placement import CPU
    from warehouse.records import mastery_table

    out = tmp_path / "plain-adapter"
    result = _export(runs, "plain", out)
    assert result.exit_code == 0, result.output
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "README.md"} <= {p.name for p in out.iterdir()}
    assert not (out / "stage.json").exists() and not out.with_name(out.name + ".partial").exists()
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: peft\n") and "# tiny: run plain" in card
    columns, rows = mastery_table(Warehouse(runs["db"]), "plain")
    for row in rows:
        r = dict(zip(columns, row))
        assert f"| `{r['node_id']}` | {r['status']} | {r['baseline']:.2f} | {r['final']:.2f} |" in card
    assert "curriculum run " in card and "--policy fixed" in card and "--max-stages 1" in card and "--run-id plain" in card
    assert f"curriculum export plain {out}" in card

    base = load_base(TINY, placement=CPU)
    before = _logits(base.model, base.tokenizer)
    exported = PeftModel.from_pretrained(base.model, str(out)).eval()
    after = _logits(exported, base.tokenizer)
    assert (after - before).abs().max() > 1e-3  # the adapter is there and does something
    stage = PeftModel.from_pretrained(load_base(TINY, placement=CPU).model,
                                      str(_final_stage(runs, "plain"))).eval()
    torch.testing.assert_close(after, _logits(stage, base.tokenizer), atol=ATOL, rtol=0)


def test_merged_export_is_plain_transformers_with_the_hyperwords(runs: dict, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from curriculum.models.load import TINY, load_base, load_tokenizer
    from curriculum.models.placement import CPU
    from curriculum.models.tokens import saved_plan

    merged_dir, adapter_dir = tmp_path / "words-model", tmp_path / "words-adapter"
    for out, extra in ((merged_dir, ("--merge",)), (adapter_dir, ())):
        result = _export(runs, "words", out, *extra)
        assert result.exit_code == 0, result.output
    assert (merged_dir / "model.safetensors").exists() and "auto_map" not in json.loads((merged_dir / "config.json").read_text())
    card = (merged_dir / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\n") and "(a-word)" in card and "--merge" in card

    tokenizer = AutoTokenizer.from_pretrained(str(merged_dir))
    model = AutoModelForCausalLM.from_pretrained(str(merged_dir), dtype=torch.float32).eval()
    assert len(tokenizer) == len(load_tokenizer(TINY)) + 4  # a-word in its four surface forms
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    assert len(tokenizer.encode(" a-word", add_special_tokens=False)) == 1

    stage = _final_stage(runs, "words")
    loaded = load_base(TINY, placement=CPU, tokens=saved_plan(stage))
    assert tokenizer(TEXT)["input_ids"] == loaded.tokenizer(TEXT)["input_ids"]
    base_logits = _logits(loaded.model, loaded.tokenizer)
    reference = _logits(PeftModel.from_pretrained(loaded.model, str(stage)).eval(), loaded.tokenizer)
    merged = _logits(model, tokenizer)
    assert (reference - base_logits).abs().max() > 1e-3  # the comparison below is not base against base
    torch.testing.assert_close(merged, reference, atol=ATOL, rtol=0)

    # the PEFT folder as its model card says to load it: any base resized to its tokenizer (the rows are in it)
    plain_tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir))
    base = load_base(TINY, placement=CPU).model
    base.resize_token_embeddings(len(plain_tokenizer))
    adapter = PeftModel.from_pretrained(base, str(adapter_dir)).eval()
    torch.testing.assert_close(_logits(adapter, plain_tokenizer), merged, atol=ATOL, rtol=0)


@pytest.mark.parametrize("run_id, occupied, message", [
    ("nope", False, "no run 'nope' in"),
    ("none", False, "run 'none' kept no adapter (no stage of it was accepted): nothing to export"),
    ("plain", True, "exists and is not an empty folder"),
])
def test_export_errors_are_one_line_and_write_nothing(runs: dict, tmp_path: Path, run_id: str, occupied: bool,
                                                      message: str) -> None:
    out = tmp_path / "out"
    if occupied:
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    result = _export(runs, run_id, out, "--merge")
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == (["keep.txt", "out"] if occupied else [])


def test_every_run_publishes_its_mastery_table_and_report_link(runs: dict) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from warehouse.records import mastery_table

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[runs["flow_runs"]["plain"]])))
    by_key = {a.key: a for a in artifacts}
    assert set(by_key) == {"tiny-mastery", "tiny-report"}
    table = json.loads(by_key["tiny-mastery"].data)
    columns, rows = mastery_table(Warehouse(runs["db"]), "plain")
    assert [(t["node"], t["status"], t["n"]) for t in table] == [(r[0], r[1], r[columns.index("n")]) for r in rows]
    link = by_key["tiny-report"]  # Prefect keeps a link artifact as markdown
    assert link.type == "markdown" and (runs["runs"] / "plain" / "report.html").resolve().as_uri() in link.data


def test_mastery_table_fits_80_columns_without_folding_node_ids() -> None:
    from rich.console import Console

    from curriculum.cli.display import mastery_rich
    from curriculum.runs.mastery import NOTE
    from curriculum.loading.validate import load_curriculum

    nodes = list(load_curriculum(ROOT / "graphs" / "hyperwords.yaml").spec.nodes)
    assert "fogwhisperfrost.transfer.remedial" in nodes
    columns = ["node_id", "status", "baseline", "final", "n", "ci_low", "ci_high", "split", "check", "best", "probed_at",
               "last_action"]
    widest = [(n, "below-gate", 0.123, 0.875, 999, 0.512, 0.953, "exam", 0.5, 0.9, 3, "back-off") for n in nodes]
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(mastery_rich(columns, widest, "run 0123456789ab"))
    lines = console.export_text().splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    assert len(lines) == len(nodes) + 3  # title, header, rule: no row wrapped
    for node in nodes:
        assert sum(line.split()[:1] == [node] for line in lines) == 1, node  # whole, on one line
    assert all("…" not in line for line in lines)
    assert all(len(line) <= 80 for line in NOTE.splitlines())


def test_help_says_what_the_tool_and_each_command_are_for() -> None:
    result = CliRunner().invoke(app, ["--help"], terminal_width=100)
    assert result.exit_code == 0
    assert result.output.split("Usage:", 1)[1].splitlines()[2].strip().startswith("Teach a language model a curriculum")
    assert "allowed to reach" not in result.output
    for command in app.registered_commands:
        doc = (command.callback.__doc__ or "").strip()
        assert len(doc.splitlines()[0]) > 40, command.callback.__name__


@pytest.mark.parametrize("name, key", [("tiny", "tiny-mastery"), ("Hyper_Words 2!", "hyper-words-2-mastery"),
                                       ("Ωmega", "mega-mastery"), ("___", "curriculum-mastery")])
def test_artifact_keys_are_valid_prefect_keys(name: str, key: str) -> None:
    from prefect.client.schemas.actions import ArtifactCreate

    from flows.artifacts import artifact_key

    assert artifact_key(name, "mastery") == key
    ArtifactCreate(key=key, type="table", data=[])  # Prefect's own validator accepts it
