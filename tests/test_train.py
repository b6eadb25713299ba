"""The LoRA stage trainer on the tiny random Llama: mechanics, determinism, continuation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from peft import PeftModel

from curriculum.models.chat import IGNORE, Example, pair_ids, prompt_ids
from curriculum.loading.jsonl import read_records
from curriculum.models.load import TINY, load_base
from curriculum.graph.problems import CurriculumError
from curriculum.graph.spec import LoraConfig, TrainConfig, TrainExample
from curriculum.training.batches import collate, mean_loss, replayed_size, token_losses, tokenize_examples, with_replay
from curriculum.training.stagefiles import ADAPTER_FILE
from curriculum.training.stagespec import STAGE_FILE
from curriculum.training.train import train_stage

EXAMPLES = [Example(f"What is glimmer number {i}?", f"Glimmer {i} is the last gold light on water at dusk.", f"mem:{i + 1}")
            for i in range(12)]
FAST = TrainConfig(epochs=4, lr=5e-3, batch_size=4, max_length=64, warmup_ratio=0.0)


def _train(out: Path, cfg: TrainConfig = FAST, parent: Path | None = None, examples=EXAMPLES, **kw):
    return train_stage(TINY, parent, examples, LoraConfig(dropout=0.0), cfg, out, progress=False, **kw)


def test_loss_falls(tmp_path: Path) -> None:
    result = _train(tmp_path / "a", FAST.model_copy(update={"epochs": 8}))
    first, last = result.log[0].loss, result.log[-1].loss
    print(f"loss {first:.3f} -> {last:.3f} over {result.steps} steps, {result.tokens_per_s:.0f} tok/s")
    assert result.steps == 8 * 3
    assert last < first - 0.5
    assert result.tokens > 0 and result.seconds > 0 and result.device == "cpu"


def test_answer_only_masking() -> None:
    tok = load_base(TINY).tokenizer
    ids, labels = pair_ids(tok, "What is a zorblat?", "A blue umbrella for cats.")
    head = prompt_ids(tok, "What is a zorblat?")
    assert ids[: len(head)] == head
    assert all(label == IGNORE for label in labels[: len(head)])
    learned = [t for t, label in zip(ids, labels) if label != IGNORE]
    assert learned == ids[len(head):]
    assert tok.decode(learned).startswith("A blue umbrella for cats.<|im_end|>")


def test_packed_and_padded_batches_give_each_example_the_same_loss() -> None:
    """Packing puts a micro-batch's examples end to end in one row with their own positions: no example may attend
    to another or be scored on its neighbour's tokens, so each example's loss is what it is alone and padded."""
    import torch

    loaded = load_base(TINY)
    varied = [Example(f"What is glimmer number {i}?" + " Say it plainly." * (i % 4), f"Glimmer {i} is " + "gold " * (1 + i % 3),
                      f"mem:{i + 1}") for i in range(7)]
    items = tokenize_examples(loaded.tokenizer, varied, 96)
    assert len({len(it.ids) for it in items}) > 2  # lengths differ: the padded batch pads
    pad = loaded.tokenizer.pad_token_id
    with torch.no_grad():
        padded = collate(items, pad, "cpu")
        assert "attention_mask" in padded and (padded["attention_mask"] == 0).any()
        rows = token_losses(loaded.model, padded).sum(dim=1)
        packed = collate(items, pad, "cpu", packed=True)
        assert packed["input_ids"].shape == (1, sum(len(it.ids) for it in items)) and "attention_mask" not in packed
        flat = token_losses(loaded.model, packed)[0]
    kept = packed["keep"].tolist()  # column j of the packed row is position kept[j]
    assert len(kept) == sum(it.answer_tokens for it in items)  # the answers' logits only, no prompt's
    starts = [0]
    for it in items[:-1]:
        starts.append(starts[-1] + len(it.ids))
    per_example = [sum(flat[j] for j, pos in enumerate(kept) if start <= pos < start + len(it.ids) - 1)
                   for start, it in zip(starts, items)]
    assert torch.allclose(torch.stack(per_example), rows, rtol=1e-4, atol=1e-4)
    alone = torch.stack([token_losses(loaded.model, collate([it], pad, "cpu")).sum() for it in items])
    assert torch.allclose(alone, rows, rtol=1e-4, atol=1e-4)


def test_a_packed_stage_trains_as_the_padded_one(tmp_path: Path) -> None:
    padded = _train(tmp_path / "padded", FAST.model_copy(update={"packing": "off"}))
    packed = _train(tmp_path / "packed", FAST.model_copy(update={"packing": "on"}))
    assert padded.steps == packed.steps
    for a, b in zip(padded.log, packed.log):
        assert b.loss == pytest.approx(a.loss, rel=2e-3, abs=2e-3) and a.tokens == b.tokens  # real tokens, no pads


def test_child_starts_where_parent_ended(tmp_path: Path) -> None:
    parent = _train(tmp_path / "parent")
    loaded = load_base(TINY)
    items = tokenize_examples(loaded.tokenizer, EXAMPLES, 64)
    base_loss = mean_loss(loaded.model, items, loaded.tokenizer.pad_token_id, "cpu")
    with_parent = PeftModel.from_pretrained(loaded.model, str(parent.adapter_dir))
    parent_loss = mean_loss(with_parent, items, loaded.tokenizer.pad_token_id, "cpu")
    one_batch = FAST.model_copy(update={"epochs": 1, "batch_size": len(EXAMPLES)})
    child = _train(tmp_path / "child", one_batch, parent=parent.adapter_dir)
    fresh = _train(tmp_path / "fresh", one_batch)
    print(f"base {base_loss:.4f}  parent {parent_loss:.4f}  child step 0 {child.log[0].loss:.4f}")
    assert parent_loss < base_loss - 0.2
    assert child.log[0].loss == pytest.approx(parent_loss, abs=1e-4)
    assert fresh.log[0].loss == pytest.approx(base_loss, abs=1e-4)


def test_same_seed_same_adapter_bytes(tmp_path: Path) -> None:
    a = _train(tmp_path / "a")
    b = _train(tmp_path / "b")
    c = _train(tmp_path / "c", FAST.model_copy(update={"seed": 1}))
    bytes_a = (a.adapter_dir / ADAPTER_FILE).read_bytes()
    assert bytes_a == (b.adapter_dir / ADAPTER_FILE).read_bytes()
    assert bytes_a != (c.adapter_dir / ADAPTER_FILE).read_bytes()


def test_adapter_is_standard_peft_with_provenance(tmp_path: Path) -> None:
    result = _train(tmp_path / "a", FAST.model_copy(update={"grad_accum": 2}))
    assert result.steps == 4 * 2  # 3 batches per epoch, 2 per optimizer step
    files = {p.name for p in result.adapter_dir.iterdir()}
    assert {ADAPTER_FILE, "adapter_config.json", STAGE_FILE} <= files
    assert not any(name.endswith(".bin") for name in files)
    stage = json.loads((result.adapter_dir / STAGE_FILE).read_text())
    assert stage["base"] == TINY and stage["examples"] == 12 and stage["train"]["grad_accum"] == 2
    model = PeftModel.from_pretrained(load_base(TINY).model, str(result.adapter_dir))
    assert any("lora_A" in name for name, _ in model.named_parameters())
    assert not (tmp_path / "a.partial").exists()


def test_too_long_and_empty_examples_name_file_and_line(tmp_path: Path) -> None:
    bad = EXAMPLES[:2] + [Example("Tell me everything.", "word " * 200, "graphs/x/data.jsonl:3"),
                          Example("Say nothing.", " ", "graphs/x/data.jsonl:4")]
    with pytest.raises(CurriculumError) as info:
        _train(tmp_path / "a", examples=bad)
    lines = [str(p) for p in info.value.problems]
    assert lines[0].startswith("graphs/x/data.jsonl:3:1: example is ") and "longer than max_length 64" in lines[0]
    assert lines[1] == "graphs/x/data.jsonl:4:1: empty prompt or answer"
    assert not (tmp_path / "a").exists()


def test_missing_field_in_data_file_names_line(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "a", "answer": "b"}\n{"prompt": "c"}\n{"prompt": "e", "answer": ""}\n')
    records, problems = read_records(data, TrainExample, "d.jsonl")
    assert [str(p) for p in problems] == [
        "d.jsonl:2:1: missing required field 'answer'",
        "d.jsonl:3:1: answer: String should have at least 1 character (got '')",
    ]
    assert len(records) == 1


def test_replay_draws_from_every_mastered_node() -> None:
    pools = [[Example(f"node {n} old {i}?", f"old answer {n}.{i}") for i in range(8)] for n in range(9)]
    mixed = with_replay(EXAMPLES, pools[:1], 0.5, seed=3)
    assert mixed[: len(EXAMPLES)] == EXAMPLES and len(mixed) == len(EXAMPLES) + 6
    assert mixed == with_replay(EXAMPLES, pools[:1], 0.5, seed=3)
    assert with_replay(EXAMPLES, pools, 0.0, seed=3) == EXAMPLES
    # a grown graph: nine mastered nodes, and each one is replayed (a pooled draw of 6 would leave 3 out)
    grown = with_replay(EXAMPLES, pools, 0.5, seed=3)[len(EXAMPLES):]
    assert {ex.prompt.split()[1] for ex in grown} == {str(n) for n in range(9)}


def test_the_replayed_size_is_the_draws_without_drawing() -> None:
    pools = [[Example(f"node {n} old {i}?", f"old answer {n}.{i}") for i in range(size)] for n, size in
             enumerate((8, 0, 3, 40))]
    for fraction, at_least, held in [(0.0, 0, 4), (0.5, 0, 1), (0.5, 0, 4), (0.0, 5, 4), (2.0, 2, 3), (0.25, 10, 4)]:
        drawn = with_replay(EXAMPLES, pools[:held], fraction, seed=1, at_least=at_least)
        assert replayed_size(len(EXAMPLES), [len(p) for p in pools[:held]], fraction, at_least) == len(drawn)


def test_node_budget_is_sane_for_eight_examples_as_for_eight_hundred() -> None:
    from curriculum.training.sizing import node_budget, round_length

    cfg = TrainConfig()  # the product's defaults: batch 8, rounds of 2 epochs, at least 4 steps, 24 epochs
    assert (round_length(8, cfg), node_budget(8, cfg)) == (4, 48)  # 1 step an epoch: 48 steps, 12 rounds of 4
    assert (round_length(800, cfg), node_budget(800, cfg)) == (200, 2400)  # 100 steps an epoch: 24 epochs
    assert node_budget(800, cfg.model_copy(update={"max_steps": 500})) == 500
    assert node_budget(8, cfg.model_copy(update={"max_steps": 20})) == 20


def test_stop_rules() -> None:
    from curriculum.training.sizing import Check, stop_reason

    cfg = TrainConfig(patience=2, min_delta=0.02)
    c = lambda *scores: [Check(i + 1, 8 * (i + 1), s, "fail", 4) for i, s in enumerate(scores)]  # noqa: E731
    assert stop_reason(c(0.1, 0.2, 0.3), 24, 48, cfg) is None  # still improving
    assert stop_reason(c(0.1, 0.3, 0.31, 0.29), 32, 48, cfg) == "plateau"  # two rounds under 0.3 + 0.02
    assert stop_reason(c(0.1, 0.3, 0.31, 0.33), 32, 48, cfg) is None  # the second of them gained enough
    assert stop_reason(c(0.1, 0.2), 48, 48, cfg) == "budget"
    assert stop_reason([*c(0.1), Check(2, 16, 0.9, "pass", 4)], 16, 48, cfg) == "gate-met"


def test_stage_in_rounds_stops_on_its_check_and_keeps_the_best_round(tmp_path: Path) -> None:
    cfg = FAST.model_copy(update={"epochs": 1, "round_steps": 3, "patience": 2})
    calls = []

    def gate_met_on_round_two(model, tokenizer):
        calls.append(model.training)
        return (0.9, "pass", 4) if len(calls) == 2 else (0.1, "fail", 4)

    result = _train(tmp_path / "met", cfg, check=gate_met_on_round_two, budget=30)
    assert result.stop_reason == "gate-met" and result.steps == 6 and len(result.checks) == 2
    assert calls == [False, False]  # checks run in eval mode
    saved = json.loads((tmp_path / "met" / STAGE_FILE).read_text())
    assert saved["stop_reason"] == "gate-met" and [c["round"] for c in saved["checks"]] == [1, 2]

    # best on round 1, then no gain for two rounds: a plateau, and the saved adapter is round 1's
    loaded = load_base(TINY)
    items = tokenize_examples(loaded.tokenizer, EXAMPLES, 64)
    scores, seen = iter([0.5, 0.2, 0.1]), []

    def falling(model, tokenizer):
        seen.append(mean_loss(model, items, tokenizer.pad_token_id, "cpu"))
        return next(scores), "fail", 4

    plateau = _train(tmp_path / "plateau", cfg, check=falling, budget=30)
    assert plateau.stop_reason == "plateau" and plateau.steps == 9
    kept = mean_loss(PeftModel.from_pretrained(load_base(TINY).model, str(tmp_path / "plateau")), items,
                     loaded.tokenizer.pad_token_id, "cpu")
    assert kept == pytest.approx(seen[0], abs=1e-5) and abs(kept - seen[-1]) > 1e-3

    budget = _train(tmp_path / "budget", cfg, check=lambda m, t: (len(m.peft_config), "fail", 4), budget=7)
    assert budget.stop_reason == "budget" and budget.steps == 7
