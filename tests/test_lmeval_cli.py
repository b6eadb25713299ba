"""A real outside client: lm-eval's own command line loads a stage's adapter and scores the repo's task YAML
exactly as the product scored the same items (tiny model: mechanics, not quality)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model

from conftest import ROOT
from curriculum.loading.jsonl import read_records
from curriculum.models.load import TINY, load_base
from curriculum.graph.spec import ChoiceItem
from probes.lmeval_bridge import LmevalProbe, file_task, items_task, run_lmeval

TASKS = ROOT / "graphs" / "hyperwords" / "lmeval"
TASK = TASKS / "fogwhisperfrost_transfer.yaml"
ITEMS = ROOT / "graphs" / "hyperwords" / "fogwhisperfrost" / "transfer_probe.jsonl"
TOLERANCE = 1e-3  # nats, per option: the same float32 model in two processes


def test_repo_task_yaml_is_the_items_task_the_product_builds() -> None:
    kept = file_task(TASK)
    built = items_task(kept["task"], data_file=ITEMS)
    assert Path(kept["dataset_kwargs"]["data_files"]["test"]).resolve() == ITEMS.resolve()
    assert {k: v for k, v in kept.items() if k not in ("dataset_kwargs", "metadata")} == \
        {k: v for k, v in built.items() if k != "dataset_kwargs"}


def test_lm_eval_cli_scores_a_stage_adapter_as_the_product_does(tmp_path: Path) -> None:
    loaded = load_base(TINY)
    base, adapter = tmp_path / "base", tmp_path / "adapter"
    loaded.model.save_pretrained(base)
    loaded.tokenizer.save_pretrained(base)
    peft = get_peft_model(loaded.model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    with torch.no_grad():  # a stage that moved: LoRA B starts at zero, which would change nothing
        gen = torch.Generator().manual_seed(0)
        for name, param in peft.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.5)
    peft.save_pretrained(adapter)

    records, problems = read_records(ITEMS, ChoiceItem, str(ITEMS))
    assert not problems
    model = PeftModel.from_pretrained(load_base(TINY).model, str(adapter)).eval()
    ours = run_lmeval(model, loaded.tokenizer, [LmevalProbe("fogwhisperfrost.transfer", 0, records=records)])
    with model.disable_adapter():
        plain = run_lmeval(model, loaded.tokenizer, [LmevalProbe("fogwhisperfrost.transfer", 0, records=records)])
    assert any(abs(a.options[0]["logprob"] - b.options[0]["logprob"]) > 0.1 for a, b in zip(ours, plain))  # the adapter counts

    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_DATASETS_CACHE": str(tmp_path / "datasets")}
    subprocess.run([sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args",
                    f"pretrained={base},peft={adapter},dtype=float32", "--tasks", TASK.name, "--apply_chat_template",
                    "--device", "cpu", "--batch_size", "16", "--log_samples", "--output_path", str(out)],
                   cwd=TASKS, env=env, check=True, capture_output=True, timeout=600)
    (samples_file,) = out.rglob("samples_hyperwords_fogwhisperfrost_transfer_*.jsonl")
    theirs = [json.loads(line) for line in samples_file.read_text().splitlines()]
    assert len(theirs) == len(ours) == len(records)
    for row, sample in zip(ours, sorted(theirs, key=lambda s: s["doc_id"])):
        lls = [float(resp[0]) for resp in sample["filtered_resps"]]
        assert [o["logprob"] for o in row.options] == pytest.approx(lls, abs=TOLERANCE)
        assert row.score == sample["acc"] and row.item == sample["doc_id"] + 1  # the file has no blank lines
