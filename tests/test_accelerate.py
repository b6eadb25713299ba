"""model.processes: a stage trained by two processes through Accelerate (gloo, on the CPU) is the stage one process
trains: the same adapter files, the same loss curve on the same data and seed; bad settings are refused in one line."""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from typer.testing import CliRunner

from curriculum.models.chat import Example
from curriculum.cli.app import app
from curriculum.training.launch import LaunchError, launch_stage
from curriculum.models.load import TINY, load_base, load_tokenizer
from curriculum.graph.spec import LoraConfig, TrainConfig
from curriculum.training.stagespec import StageSpec
from curriculum.training.batches import shard, tokenize_examples, windows
from curriculum.training.stagefiles import ADAPTER_FILE
from curriculum.training.stagespec import STAGE_FILE
from curriculum.training.train import train_spec
from helpers import tiny_graph

# 9 examples of four lengths in batches of 4, 2 batches a step: with seed 0 a process's share of a step is sometimes
# two micro-batches (no_sync, then the all-reduce), sometimes one, and in the last step none (the one-example batch)
EXAMPLES = [Example(f"What is ember number {i}?", f"Ember {i} is the glow left in the hearth after {'the fire ' * (i % 4)}"
                    "dies down.", f"mem:{i + 1}") for i in range(9)]
CFG = TrainConfig(epochs=3, lr=5e-3, batch_size=4, grad_accum=2, max_length=96, warmup_ratio=0.0, seed=0)
RELATIVE = 1e-3  # same examples per step, same init and order: only the order of float sums differs


def _spec(out: Path) -> StageSpec:
    return StageSpec(base=TINY, examples=EXAMPLES, lora=LoraConfig(dropout=0.0), train=CFG, out_dir=str(out),
                     placement={"device": "cpu"}, meta={"run_id": "r", "inputs": "x"})


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("stages")
    mp = pytest.MonkeyPatch()
    mp.setenv("OMP_NUM_THREADS", "1")  # two workers on a shared machine
    try:
        one = train_spec(_spec(root / "one"))
        two = launch_stage(_spec(root / "two"), 2)
    finally:
        mp.undo()
    return one, two


def test_the_data_reaches_every_case_of_a_share() -> None:
    items = tokenize_examples(load_tokenizer(TINY), EXAMPLES, CFG.max_length)
    sizes = [[len(batch) for batch in window] for epoch, window in
             itertools.takewhile(lambda w: w[0] < CFG.epochs, windows(items, CFG, random.Random(CFG.seed)))]
    assert sizes == [[4, 1], [4], [1, 4], [4], [4, 4], [1]]
    assert shard([[1, 2, 3, 4], [5]], 1, 2) == [[2, 4], []]


def test_two_processes_follow_the_one_process_loss_curve(stages) -> None:
    one, two = stages
    assert one.steps == two.steps == 3 * 2  # ceil(9 / 4) = 3 batches, 2 a step, 3 epochs
    assert (one.processes, two.processes) == (1, 2)
    worst = max(abs(a.loss - b.loss) / a.loss for a, b in zip(one.log, two.log))
    print("one:", [round(s.loss, 5) for s in one.log])
    print("two:", [round(s.loss, 5) for s in two.log])
    print(f"worst relative difference {worst:.2e}")
    assert worst < RELATIVE
    assert one.log[-1].loss < one.log[0].loss  # it learned, so agreeing is not agreeing on nothing
    assert two.tokens == one.tokens and [s.tokens for s in two.log] == [s.tokens for s in one.log]
    assert two.train_loss == pytest.approx(one.train_loss, rel=RELATIVE)


def test_two_processes_write_the_one_process_adapter(stages) -> None:
    one, two = stages
    names = sorted(p.name for p in Path(one.adapter_dir).iterdir())
    assert sorted(p.name for p in Path(two.adapter_dir).iterdir()) == names and ADAPTER_FILE in names
    record = json.loads((Path(two.adapter_dir) / STAGE_FILE).read_text())
    assert record["steps"] == 6 and record["tokens"] == one.tokens and record["run_id"] == "r"
    assert record["device"] == "cpu" and len(record["log"]) == 6 and record["processes"] == 2
    assert "processes" not in json.loads((Path(one.adapter_dir) / STAGE_FILE).read_text())
    assert not list(Path(two.adapter_dir).parent.glob("*.partial"))
    model = PeftModel.from_pretrained(load_base(TINY).model, str(two.adapter_dir))
    assert any("lora_" in name for name, _ in model.named_parameters())


def test_zero_processes_is_refused_in_one_line(tmp_path: Path) -> None:
    graph = tiny_graph(tmp_path)
    graph.write_text(graph.read_text().replace("model: {base: tiny-random}", "model: {base: tiny-random, processes: 0}"))
    result = CliRunner().invoke(app, ["validate", str(graph)])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if "processes" in line]
    assert len(lines) == 1 and "greater than or equal to 1" in lines[0], result.output
    with pytest.raises(LaunchError, match="model.processes must be at least 1, got 0") as info:
        launch_stage(_spec(tmp_path / "s"), 0)
    assert "\n" not in str(info.value)


def test_a_missing_accelerate_config_is_refused_in_one_line(tmp_path: Path) -> None:
    graph = tiny_graph(tmp_path)
    graph.write_text(graph.read_text().replace("model: {base: tiny-random}",
                                               "model: {base: tiny-random, processes: 2, accelerate_config: fsdp.yaml}"))
    result = CliRunner().invoke(app, ["validate", str(graph)])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if "accelerate_config" in line]
    assert len(lines) == 1 and "fsdp.yaml" in lines[0], result.output
    with pytest.raises(LaunchError, match="model.accelerate_config: no such file") as info:
        launch_stage(_spec(tmp_path / "s"), 2, tmp_path / "fsdp.yaml")
    assert "\n" not in str(info.value)


def test_a_failing_process_is_one_line_with_its_own_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    spec = _spec(tmp_path / "s").model_copy(update={"base": str(tmp_path / "no-such-model")})
    with pytest.raises(LaunchError, match=r"stage of 2 processes failed \(exit 1\): .*no-such-model") as info:
        launch_stage(spec, 2)
    print(info.value)
    assert "\n" not in str(info.value) and not (tmp_path / "s").exists()


def test_the_flow_launches_a_stage_of_several_processes_for_one_rounds_length(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """train_task: model.processes > 1 goes to launch_stage with the config beside the graph and the fixed length of
    a remote stage; model.processes 1 trains here with the node's whole budget and its check, as before."""
    import flows.stages as stages
    from curriculum.policies.runstate import Step
    from curriculum.policies.states import StageKind
    from curriculum.loading.validate import load_curriculum

    graph = tiny_graph(tmp_path)
    (tmp_path / "fsdp.yaml").write_text("distributed_type: FSDP\n")
    calls: list[tuple[str, StageSpec, dict]] = []

    def launched(spec: StageSpec, processes: int, config: Path | None = None):
        calls.append(("launch", spec, {"processes": processes, "config": config}))
        return train_spec(spec)

    def here(spec: StageSpec, **kw):
        calls.append(("here", spec, kw))
        return train_spec(spec.model_copy(update={"budget": 1}))  # the spec is what is checked; one step will do

    monkeypatch.setattr(stages, "launch_stage", launched)
    monkeypatch.setattr(stages, "train_spec", here)
    monkeypatch.setattr(stages, "get_run_logger", lambda: logging.getLogger("test"))
    step = Step(StageKind.TRAIN, "a", 1, ["a"])
    text = graph.read_text()
    rows = {}
    for name, model in (("one", "{base: tiny-random}"),
                        ("two", "{base: tiny-random, processes: 2, accelerate_config: fsdp.yaml}")):
        graph.write_text(text.replace("model: {base: tiny-random}", f"model: {model}"))
        rows[name] = stages.train_task.fn(load_curriculum(graph), step, 1, None, tmp_path / name, 0, False,
                                          check=lambda model, tok: (1.0, "pass", 1))
    (how_one, one, kw_one), (how_two, two, kw_two) = calls
    assert (how_one, how_two) == ("here", "launch")
    assert kw_two == {"processes": 2, "config": tmp_path / "fsdp.yaml"}
    assert one.budget == rows["one"]["budget"] > rows["one"]["round_steps"] and kw_one["check"] is not None
    assert two.budget == rows["two"]["round_steps"] == rows["two"]["steps"] and rows["two"]["stop_reason"] is None
    assert one.inputs(node="a", kind=StageKind.TRAIN, attempt=1, checked=True) == one.meta["inputs"]
    assert two.inputs(node="a", kind=StageKind.TRAIN, attempt=1, checked=False) == two.meta["inputs"]


def test_what_the_machine_cannot_do_is_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FSDP on the CPU (Accelerate would quietly train with DDP) and more processes than GPUs."""
    config = tmp_path / "fsdp.yaml"
    config.write_text("distributed_type: FSDP\nfsdp_config: {fsdp_version: 2}\n")
    with pytest.raises(LaunchError, match="asks for FSDP, which Accelerate runs on GPUs only") as info:
        launch_stage(_spec(tmp_path / "s"), 2, config)
    assert "\n" not in str(info.value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    cuda = _spec(tmp_path / "s").model_copy(update={"placement": {"device": "cuda"}})
    with pytest.raises(LaunchError, match=r"model.processes is 2 but this machine has 1 CUDA device\(s\)"):
        launch_stage(cuda, 2)
    assert not (tmp_path / "s").exists()


@pytest.mark.slow  # a whole run: Prefect's test server and two processes launched per stage (1 to 3 minutes)
def test_a_run_of_two_process_stages_trains_probes_and_records_them(prefect_harness, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.curriculum_flow import curriculum
    from warehouse.db import Warehouse

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    graph = tiny_graph(tmp_path)
    graph.write_text(graph.read_text().replace("model: {base: tiny-random}", "model: {base: tiny-random, processes: 2}"))
    run_id = curriculum(graph=str(graph), warehouse=str(tmp_path / "w.duckdb"), runs_dir=str(tmp_path / "runs"),
                        run_id="two")
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "runs" / run_id).glob("stage-*/stage.json"))]
    assert records and all(r["processes"] == 2 and r["stop_reason"] is None and not r["checks"] for r in records)
    _, rows = Warehouse(tmp_path / "w.duckdb").query(
        "SELECT steps, round_steps, stop_reason FROM stages WHERE run_id = ? AND steps > 0", [run_id])
    assert len(rows) == len(records) and all(steps == round_steps and reason is None for steps, round_steps, reason in rows)


STOPPED_STAGE = """
import signal, sys
signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))  # what Prefect's engine does with a SIGTERM: an exception
from curriculum.training.launch import launch_stage
from curriculum.training.stagespec import StageSpec
spec = StageSpec.model_validate_json(sys.argv[1])
launch_stage(spec, 2)
"""


def test_a_stopped_stage_takes_its_processes_down(tmp_path: Path) -> None:
    """SIGTERM to the flow while a launched stage trains: no process of the stage is left behind (torchrun starts
    each in a session of its own, so killing the launcher alone would leave them training)."""
    import psutil

    spec = _spec(tmp_path / "s").model_copy(update={"budget": 100_000})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", STOPPED_STAGE, spec.model_dump_json()], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, workers = time.monotonic() + 120, []
        while len(workers) < 2:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
            workers = [p for p in psutil.Process(proc.pid).children(recursive=True)
                       if "curriculum.training.launch" in " ".join(p.cmdline())]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
        _, alive = psutil.wait_procs(workers, timeout=20)
        assert not alive, f"left behind: {alive}"
    finally:  # the stage's processes only: pytest's own children (the Prefect test server) stay
        try:
            left = [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]
        except psutil.NoSuchProcess:
            left = []
        for p in [*left, *workers]:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
