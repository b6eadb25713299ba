"""On the real default model: probes see a stage's learning, and only where it happened."""

from __future__ import annotations

from pathlib import Path

import pytest
from peft import PeftModel

from conftest import ROOT
from curriculum.models.load import BUNDLED, load_base
from curriculum.training.batches import examples_from_records
from curriculum.training.train import train_stage
from curriculum.loading.validate import load_curriculum
from probes.results import aggregate
from probes.sweep import probe_nodes

pytestmark = pytest.mark.slow

TRAINED, UNTOUCHED, CHOICE = "fogwhisperfrost.definition", "emberlull.definition", "emberlull.counterexample"


def _scores(model, tok, cur) -> dict[str, float]:
    results = probe_nodes(model, tok, cur, {n: None for n in (TRAINED, UNTOUCHED, CHOICE)})
    return {n: aggregate(r) for n, r in results.items()}


def test_stage_raises_its_node_and_not_an_untouched_one(tmp_path: Path) -> None:
    cur = load_curriculum(ROOT / "graphs" / "hyperwords.yaml")
    loaded = load_base(BUNDLED)
    before = _scores(loaded.model.eval(), loaded.tokenizer, cur)
    cfg = cur.spec.train_config(TRAINED).model_copy(update={"epochs": 6})
    result = train_stage(BUNDLED, None, examples_from_records(cur.examples[TRAINED]), cur.spec.model.lora, cfg,
                         tmp_path / "stage", progress=False)
    tuned = PeftModel.from_pretrained(loaded.model, str(result.adapter_dir)).eval()
    after = _scores(tuned, loaded.tokenizer, cur)
    print("\nnode                         before  after")
    for n in before:
        print(f"{n:28s} {before[n]:6.3f} {after[n]:6.3f}")
    assert before[TRAINED] < 0.45 and before[UNTOUCHED] < 0.45, "a made-up word is unknown before training"
    assert before[CHOICE] <= 0.34, "choosing among made-up words is at chance before training"
    gain, spill = after[TRAINED] - before[TRAINED], after[UNTOUCHED] - before[UNTOUCHED]
    assert gain >= 0.1
    # the answer format carries over a little (any hyperword gets a scene-like answer); the meaning does not
    assert spill < gain / 2
