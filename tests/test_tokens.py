"""Single-token hyperwords: vocabulary, initialisation, saving with the stage, lexicon errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from typer.testing import CliRunner

from curriculum.models.chat import Example
from curriculum.cli.app import app
from curriculum.models.load import TINY, load_base
from curriculum.graph.spec import LoraConfig, NewTokens, TrainConfig
from curriculum.models.tokens import hyperword_ids, saved_plan, surface_forms, token_plan
from curriculum.training.train import train_stage
from curriculum.loading.validate import load_curriculum
from conftest import ROOT
from helpers import tiny_graph

LEXICON = [
    {"word": "fogwhisperfrost", "parts": ["fog", "whisper", "frost"], "gloss": "the hush of a foggy frozen forest dawn"},
    {"word": "emberlull", "parts": ["ember", "lull"], "gloss": "the drowsy calm by a dying fire"},
]
TEXT = "Fogwhisperfrost is a hush.\nWe walked into fogwhisperfrost, then emberlull by the fire; emberlull!"


def plan(init: str = "compositional") -> dict:
    return {"init": init, "lexicon": LEXICON}


def _rows(tokenizer, weight: torch.Tensor, text: str) -> torch.Tensor:
    return weight[tokenizer.encode(" " + text, add_special_tokens=False)].mean(0)


def test_tokenizer_round_trips_and_each_hyperword_is_one_id() -> None:
    before = load_base(TINY).tokenizer
    after = load_base(TINY, tokens=plan()).tokenizer
    ids = after.encode(TEXT, add_special_tokens=False)
    assert after.decode(ids) == TEXT
    for entry in LEXICON:
        assert len(before.encode(entry["word"], add_special_tokens=False)) > 1  # the base splits it
        for form in surface_forms(entry["word"]):
            assert len(after.encode(form, add_special_tokens=False)) == 1, form
    assert len(ids) < len(before.encode(TEXT, add_special_tokens=False))
    assert len(after) == len(before) + sum(len(surface_forms(e["word"])) for e in LEXICON)


def test_compositional_and_gloss_init_are_the_means_random_is_seeded() -> None:
    base = load_base(TINY)
    weight = base.model.get_input_embeddings().weight.detach()
    comp = load_base(TINY, tokens=plan("compositional"))
    gloss = load_base(TINY, tokens=plan("gloss"))
    rand, rand_again = load_base(TINY, tokens=plan("random")), load_base(TINY, tokens=plan("random"))
    for entry in LEXICON:
        parts = torch.stack([_rows(base.tokenizer, weight, p) for p in entry["parts"]]).mean(0)
        for token_id in hyperword_ids(comp.tokenizer, {"lexicon": [entry]}):
            assert torch.allclose(comp.model.get_input_embeddings().weight[token_id], parts)
            assert torch.allclose(comp.model.get_output_embeddings().weight[token_id], parts)  # tied rows
        token_id = hyperword_ids(gloss.tokenizer, {"lexicon": [entry]})[0]
        assert torch.allclose(gloss.model.get_input_embeddings().weight[token_id],
                              _rows(base.tokenizer, weight, entry["gloss"]))
        r1 = rand.model.get_input_embeddings().weight[token_id]
        assert torch.equal(r1, rand_again.model.get_input_embeddings().weight[token_id])
        assert not torch.allclose(r1, parts)
    assert not torch.allclose(*(comp.model.get_input_embeddings().weight[hyperword_ids(comp.tokenizer, {"lexicon": [e]})[0]]
                                for e in LEXICON))  # different parts, different rows


def test_saved_stage_reloads_with_same_vocabulary_and_trained_rows(tmp_path: Path) -> None:
    examples = [Example(f"What is fogwhisperfrost {i}?", "Fogwhisperfrost is the hush of a foggy dawn.", f"x:{i}")
                for i in range(6)]
    cfg = TrainConfig(epochs=2, lr=0.01, batch_size=3, max_length=64)
    result = train_stage(TINY, None, examples, LoraConfig(r=4, alpha=8), cfg, tmp_path / "s1", progress=False,
                         tokens=plan())
    folder = Path(result.adapter_dir)
    assert saved_plan(folder) == plan() and (folder / "tokenizer.json").exists()
    tensors = load_file(folder / "adapter_model.safetensors")
    deltas = [k for k in tensors if "trainable_tokens_delta" in k]
    assert deltas and not any("embed_tokens.weight" in k and "delta" not in k for k in tensors)  # rows, not the matrix

    fresh = load_base(TINY, tokens=saved_plan(folder))
    ids = hyperword_ids(fresh.tokenizer, plan())
    init = fresh.model.get_input_embeddings().weight[ids].detach().clone()
    model = PeftModel.from_pretrained(fresh.model, str(folder))
    merged = model.merge_and_unload()
    trained = merged.get_input_embeddings().weight[ids]
    assert len(fresh.tokenizer) == merged.get_input_embeddings().weight.shape[0]
    assert torch.allclose(trained, tensors[deltas[0]])
    assert not torch.allclose(trained[0], init[0])  # the row used in the data was trained
    assert torch.allclose(merged.get_output_embeddings().weight[ids], trained)  # the output rows follow

    child = train_stage(TINY, folder, examples, LoraConfig(r=4, alpha=8), cfg, tmp_path / "s2", progress=False,
                        tokens=plan())
    assert child.log[0].loss == pytest.approx(result.train_loss, rel=0.5)  # continues, vocabulary intact


def _lexicon_graph(tmp_path: Path, lexicon_yaml: str) -> Path:
    graph = tiny_graph(tmp_path, extra_yaml="lexicon:\n" + lexicon_yaml)
    text = graph.read_text().replace("model: {base: tiny-random}",
                                     "model: {base: tiny-random, new_tokens: {from: lexicon, init: compositional}}")
    graph.write_text(text)
    return graph


@pytest.mark.parametrize("lexicon_yaml, line, message", [
    ("  - {word: fogwhisperfrost, parts: [fog, '<|im_end|>'], gloss: g}\n", 7,
     "part '<|im_end|>' of 'fogwhisperfrost' cannot be encoded by the tokenizer"),
    ("  - {word: emberlull, parts: [ember], gloss: g}\n  - {word: emberlull, parts: [lull], gloss: h}\n", 8,
     "duplicate hyperword 'emberlull' (first declared at line 7)"),
    ("  - {word: hello, parts: [hel, lo], gloss: a greeting}\n", 7,
     "hyperword 'hello' clashes with an existing token 'hello' of the tokenizer"),
])
def test_bad_lexicon_names_file_line_and_writes_nothing(tmp_path: Path, lexicon_yaml: str, line: int,
                                                        message: str, monkeypatch) -> None:
    graph = _lexicon_graph(tmp_path, lexicon_yaml)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", str(graph), "--db", str(tmp_path / "w.duckdb")])
    assert result.exit_code == 1
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"graph.yaml:{line}:") and message in first, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "w.duckdb").exists() and not (tmp_path / "runs").exists()


def test_bundled_lexicon_fits_the_bundled_tokenizer() -> None:
    cur = load_curriculum(ROOT / "graphs" / "hyperwords.yaml").spec
    assert len(cur.lexicon) >= 8 and cur.model.new_tokens is None  # off by default, measured in bench/tokens.py
    on = cur.model_copy(update={"model": cur.model.model_copy(update={"new_tokens": NewTokens(init="compositional")})})
    loaded = load_base(TINY, tokens=token_plan(on))  # the tiny model shares the bundled tokenizer
    assert all(len(loaded.tokenizer.encode(" " + e.word, add_special_tokens=False)) == 1 for e in cur.lexicon)
    assert json.loads(json.dumps(token_plan(on)))["init"] == "compositional"  # plain JSON: a deployment parameter


def test_a_run_with_single_token_hyperwords_tags_items_and_chains_stages(prefect_harness, tmp_path: Path) -> None:
    from flows.curriculum_flow import curriculum
    from warehouse.db import Warehouse

    graph = _lexicon_graph(tmp_path, "  - {word: a-word, parts: [still, lake], gloss: a quiet lake at dawn, "
                                      "mode: calm, context: lake}\n")
    run_id = curriculum(graph=str(graph), warehouse=str(tmp_path / "w.duckdb"), runs_dir=str(tmp_path / "runs"),
                        policy="fixed", max_stages=2)
    _, stages = Warehouse(tmp_path / "w.duckdb").query(
        "SELECT stage, node_id, parent_stage, status FROM stages WHERE run_id = ? ORDER BY stage", [run_id])
    assert [(s, n, p) for s, n, p, _ in stages] == [(1, "a", None), (2, "b", 1), (3, "*", 2)]  # 3: the final sweep
    assert saved_plan(tmp_path / "runs" / run_id / "stage-2")["lexicon"][0]["word"] == "a-word"
    _, tags = Warehouse(tmp_path / "w.duckdb").query(
        "SELECT DISTINCT node_id, tags->>'hyperword', tags->>'mode', tags->>'context' FROM probe_results "
        "WHERE run_id = ? AND probe_kind = 'paraphrase' ORDER BY 1", [run_id])
    assert tags == [("a", "a-word", "calm", "calm"), ("b", None, None, "calm")]  # the item's own tag wins
    from warehouse.records import run_lexicon

    assert run_lexicon(Warehouse(tmp_path / "w.duckdb"), run_id) == ["a-word"]  # what `bridge --compress` ranks
