"""model.device / model.dtype / model.quantize: resolved in one place, refused in one line, recorded per stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from curriculum.models.bases import ModelError
from curriculum.models.chat import Example
from curriculum.cli.app import app
from curriculum.models.load import TINY
from curriculum.models.placement import CPU, Placement, resolve
from curriculum.graph.spec import LoraConfig, ModelConfig, TrainConfig
from curriculum.training.stagespec import STAGE_FILE
from curriculum.training.train import train_stage
from helpers import tiny_graph

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a machine without CUDA says")
EXAMPLES = [Example(f"What is hush number {i}?", f"Hush {i} is the quiet after snow falls at night.", f"mem:{i + 1}")
            for i in range(8)]
CFG = TrainConfig(epochs=3, lr=5e-3, batch_size=4, max_length=64, warmup_ratio=0.0)


def test_auto_is_cuda_in_half_precision_when_there_is_a_gpu_else_cpu_fp32() -> None:
    got = resolve()
    if torch.cuda.is_available():
        assert got.device == "cuda" and got.dtype in (torch.bfloat16, torch.float16)
    else:
        assert got == CPU and got.record() == {"device": "cpu", "dtype": "float32", "quantize": None}


def test_explicit_settings_are_taken_as_given() -> None:
    assert resolve("cpu", "bfloat16") == Placement("cpu", torch.bfloat16)
    assert resolve("cpu", "float16").dtype_name == "float16"
    assert ModelConfig().device == "auto" and ModelConfig().dtype == "auto" and ModelConfig().quantize is None


@NO_CUDA
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_asked_for_without_cuda_is_one_line(device: str) -> None:
    with pytest.raises(ModelError, match=f"model.device is '{device}' but CUDA is not available") as info:
        resolve(device)
    assert "\n" not in str(info.value)


@NO_CUDA
@pytest.mark.parametrize("device", ["auto", "cpu"])
def test_4bit_without_cuda_is_refused(device: str) -> None:
    with pytest.raises(ModelError, match="model.quantize: 4bit needs a CUDA device") as info:
        resolve(device, quantize="4bit")
    assert "\n" not in str(info.value)


def test_4bit_without_bitsandbytes_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A GPU machine without the [gpu] extra: the message names the extra to install."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    with pytest.raises(ModelError, match=r"needs bitsandbytes: pip install 'curriculum-orchestrator\[gpu\]'"):
        resolve("cuda", quantize="4bit")


@NO_CUDA
def test_run_refuses_4bit_without_cuda_in_one_line_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    graph = tiny_graph(tmp_path)
    graph.write_text(graph.read_text().replace("model: {base: tiny-random}", "model: {base: tiny-random, quantize: 4bit}"))
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = CliRunner().invoke(app, ["run", "graph.yaml", "--db", "w.duckdb", "--runs-dir", "runs"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert result.stderr == "model.quantize: 4bit needs a CUDA device (model.device is 'cpu')\n"
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_stage_records_where_and_how_it_ran(tmp_path: Path) -> None:
    result = train_stage(TINY, None, EXAMPLES, LoraConfig(dropout=0.0), CFG, tmp_path / "s", progress=False, placement=CPU)
    record = json.loads((tmp_path / "s" / STAGE_FILE).read_text())
    assert {k: record[k] for k in ("device", "dtype", "quantize", "micro_batch", "grad_accum", "ooms")} == {
        "device": "cpu", "dtype": "float32", "quantize": None, "micro_batch": 4, "grad_accum": 1, "ooms": 0}
    assert (result.device, result.dtype, result.micro_batch) == ("cpu", "float32", 4)
    assert list(record["phases"]) == ["load", "tokenize", "train", "check"]  # where the stage's wall time went
    assert list(result.phases) == ["load", "tokenize", "train", "check", "save"] and result.phases["check"] == 0
    assert result.phases["train"] > 0 and result.phases["save"] > 0 and min(result.phases.values()) >= 0
    assert result.phases["train"] + result.phases["check"] >= result.seconds  # train also counts attaching the adapter


def test_bf16_stage_on_the_cpu_runs_under_autocast_with_a_loss_close_to_fp32(tmp_path: Path) -> None:
    """The mixed-precision path (bf16 base, fp32 LoRA layers, autocast) that a GPU takes, here on the CPU."""
    fp32 = train_stage(TINY, None, EXAMPLES, LoraConfig(dropout=0.0), CFG, tmp_path / "fp32", progress=False,
                       placement=CPU)
    bf16 = train_stage(TINY, None, EXAMPLES, LoraConfig(dropout=0.0), CFG, tmp_path / "bf16", progress=False,
                       placement=Placement("cpu", torch.bfloat16))
    assert json.loads((tmp_path / "bf16" / STAGE_FILE).read_text())["dtype"] == "bfloat16"
    assert bf16.steps == fp32.steps == 6
    for a, b in zip(fp32.log, bf16.log):
        assert b.loss == pytest.approx(a.loss, rel=0.05), (a, b)
    assert bf16.log[-1].loss < bf16.log[0].loss - 0.3


def test_a_remote_stage_resolves_the_graphs_settings_on_its_worker(tmp_path: Path) -> None:
    """train-stage (a worker of a GPU pool) gets the graph's model.device/dtype, not the orchestrator's resolution."""
    from curriculum.training.stagespec import StageSpec
    from flows.train_stage_flow import train_stage_flow

    spec = StageSpec(base=TINY, examples=EXAMPLES, lora=LoraConfig(dropout=0.0), train=CFG, out_dir=str(tmp_path / "r"),
                     budget=2, placement={"device": "cpu", "dtype": "bfloat16", "quantize": None})
    wire = json.loads(json.dumps(spec.model_dump(mode="json")))  # what a deployment run is sent: plain JSON
    train_stage_flow.fn(StageSpec.model_validate(wire))
    record = json.loads((tmp_path / "r" / STAGE_FILE).read_text())
    assert (record["device"], record["dtype"], record["steps"]) == ("cpu", "bfloat16", 2)


def test_stages_borrow_the_probers_base_where_the_graph_places_it_on_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not where torch happens to see a GPU: a graph that says device: cpu keeps two copies on a GPU machine too."""
    from flows.stages import share_base

    monkeypatch.delenv("CURRICULUM_SHARE_BASE", raising=False)
    assert share_base(Placement("cuda:1", torch.bfloat16)) and not share_base(CPU)
    monkeypatch.setenv("CURRICULUM_SHARE_BASE", "1")
    assert share_base(CPU)
    monkeypatch.setenv("CURRICULUM_SHARE_BASE", "0")
    assert not share_base(Placement("cuda", torch.bfloat16))
