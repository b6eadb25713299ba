"""Forgetting controls for the node-by-node policies: replay sized per node, the adapter's lower layers frozen after
the first stage, and a closing consolidation round over every held node (each off by default)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from curriculum.models.chat import Example
from curriculum.stats.evidence import Evidence
from curriculum.models.load import TINY
from curriculum.policies.registry import make_policy
from curriculum.policies.runstate import RunState
from curriculum.graph.spec import LoraConfig, TrainConfig
from curriculum.training.stagespec import stage_inputs
from curriculum.training.batches import with_replay
from curriculum.training.stagefiles import ADAPTER_FILE
from curriculum.training.train import train_stage
from curriculum.loading.validate import load_curriculum
from helpers import chain_graph, tiny_graph

EXAMPLES = [Example(f"What is glimmer {i}?", f"Glimmer {i} is the last gold light on water.", f"mem:{i}") for i in range(12)]
POOLS = [[Example(f"p{k} {i}?", f"pool {k} answer {i}.", f"mem:{k}:{i}") for i in range(size)]
         for k, size in enumerate((8, 3, 20))]


def test_replay_each_is_a_floor_per_held_node() -> None:
    # the share alone: 0.25 * 12 / 3 pools = 1 example from each
    assert len(with_replay(EXAMPLES, POOLS, 0.25, seed=1)) == 12 + 3
    # a floor of 4 a node: 4 from the 8-example pool, all 3 of the 3-example one, 4 of the 20
    mixed = with_replay(EXAMPLES, POOLS, 0.25, seed=1, at_least=4)
    drawn = mixed[len(EXAMPLES):]
    assert [sum(ex.source.startswith(f"mem:{k}:") for ex in drawn) for k in range(3)] == [4, 3, 4]
    assert len({ex.source for ex in drawn}) == len(drawn)  # without repeats within a pool
    # the share wins where it asks for more: 1.0 * 12 / 3 = 4 each, the floor 2 changes nothing
    assert with_replay(EXAMPLES, POOLS, 1.0, seed=1, at_least=2) == with_replay(EXAMPLES, POOLS, 1.0, seed=1)
    # a floor with no share: replay still happens, exactly the floor
    assert len(with_replay(EXAMPLES, POOLS, 0.0, seed=1, at_least=2)) == 12 + 2 + 2 + 2
    assert with_replay(EXAMPLES, POOLS, 0.0, seed=1) == EXAMPLES


def _lora_weights(folder: Path) -> dict[str, object]:
    return load_file(str(folder / ADAPTER_FILE))


def test_freeze_lower_keeps_the_lower_layers_of_a_continued_adapter(tmp_path: Path) -> None:
    cfg = TrainConfig(epochs=2, lr=5e-3, batch_size=4, max_length=64, warmup_ratio=0.0)
    first = train_stage(TINY, None, EXAMPLES, LoraConfig(dropout=0.0), cfg.model_copy(update={"freeze_lower": 0.5}),
                        tmp_path / "first", progress=False)
    parent = _lora_weights(first.adapter_dir)
    assert any(".layers.0." in k for k in parent) and any(".layers.1." in k for k in parent)
    later = EXAMPLES[6:]
    frozen = train_stage(TINY, first.adapter_dir, later, LoraConfig(dropout=0.0),
                         cfg.model_copy(update={"freeze_lower": 0.5}), tmp_path / "frozen", progress=False)
    free = train_stage(TINY, first.adapter_dir, later, LoraConfig(dropout=0.0), cfg, tmp_path / "free", progress=False)
    kept, moved = _lora_weights(frozen.adapter_dir), _lora_weights(free.adapter_dir)
    lower = [k for k in parent if ".layers.0." in k]
    upper = [k for k in parent if ".layers.1." in k]
    # the tiny model has 2 layers: half frozen is layer 0, exactly as the first stage left it; layer 1 went on
    assert all((kept[k] == parent[k]).all() for k in lower)
    assert any(not (kept[k] == parent[k]).all() for k in upper)
    # without it every layer moves (the first stage of a run trains them all, whatever the setting)
    assert any(not (moved[k] == parent[k]).all() for k in lower)
    assert any(not (v == 0).all() for k, v in parent.items() if ".layers.0." in k and "lora_B" in k)


def test_new_settings_at_their_defaults_leave_an_older_stage_hash_unchanged() -> None:
    cfg = TrainConfig()
    older = {k: v for k, v in cfg.model_dump().items() if k not in ("replay_each", "freeze_lower", "consolidate", "packing")}
    # an example as the older hash read it: before conversations (system, history) existed
    doc = {"base": TINY, "parent": None, "examples": [{"prompt": e.prompt, "answer": e.answer, "source": e.source}
                                                      for e in EXAMPLES], "pools": [],
           "lora": LoraConfig().model_dump(), "train": older}
    assert stage_inputs(TINY, None, EXAMPLES, [], LoraConfig(), cfg) == hashlib.sha256(
        json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
    assert stage_inputs(TINY, None, EXAMPLES, [], LoraConfig(), cfg.model_copy(update={"freeze_lower": 0.5})) != \
        stage_inputs(TINY, None, EXAMPLES, [], LoraConfig(), cfg)


def binary(right: list[int]) -> Evidence:
    return Evidence({(0, i + 1): float(v) for i, v in enumerate(right)}, True, len(right))


Y_BELOW = [1] * 7 + [0] * 9  # 0.44 of 16 items: under the gate of 0.5


def _finished_chain(tmp_path: Path, consolidate: bool):
    """z mastered, y below its gate (budget spent), x and w mastered: nothing left to train."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    loaded = load_curriculum(chain_graph(tmp_path, train=f"{{consolidate: {str(consolidate).lower()}}}"))
    pol, st = make_policy("gated"), RunState.start(loaded.spec, loaded.graph)
    pol.baseline(st, {n: binary([0] * 8) for n in "zyxw"})
    spent = {"steps": 40, "stop_reason": "budget"}
    pol.observe(st, pol.next_step(st), 1, {"z": binary([1] * 8)}, spent)
    pol.observe(st, pol.next_step(st), 2, {"y": binary(Y_BELOW), "z": binary([1] * 8)}, spent)
    pol.observe(st, pol.next_step(st), 3, {"x": binary([1] * 8), "z": binary([1] * 8)}, spent)
    pol.observe(st, pol.next_step(st), 4, {"w": binary([1] * 8), "z": binary([1] * 8), "x": binary([1] * 8)}, spent)
    assert [st.status[n] for n in "zyxw"] == ["mastered", "below-gate", "mastered", "mastered"]
    return pol, st


def test_consolidation_closes_the_graph_once_over_every_held_node(tmp_path: Path) -> None:
    pol, st = _finished_chain(tmp_path / "off", consolidate=False)
    assert pol.next_step(st) is None  # off by default: the graph simply ends
    pol, st = _finished_chain(tmp_path / "on", consolidate=True)
    step = pol.next_step(st)
    assert (step.kind, step.node_id, step.parent, step.data_nodes) == ("consolidate", "*", 4, ["z", "y", "x", "w"])
    # kept: no held node significantly worse, and y, below its gate, now over it on the same items: mastered
    outcome, decisions = pol.observe(st, step, 5, {n: binary([1] * (16 if n == "y" else 8)) for n in "zyxw"}, {"steps": 6})
    assert outcome == "done" and st.accepted_stage == 5
    assert [(d.node_id, d.action) for d in decisions] == [("*", "keep"), ("y", "pass")]
    assert st.status["y"] == "mastered" and "closing consolidation" in decisions[1].reason
    assert pol.next_step(st) is None  # once


def test_consolidation_that_makes_a_held_node_worse_is_discarded(tmp_path: Path) -> None:
    pol, st = _finished_chain(tmp_path, consolidate=True)
    step = pol.next_step(st)
    # x mastered on 8/8 now 1/8: significantly worse and below its gate
    outcome, decisions = pol.observe(st, step, 5, {"z": binary([1] * 8), "y": binary(Y_BELOW),
                                                   "x": binary([1] + [0] * 7), "w": binary([1] * 8)}, {"steps": 6})
    assert outcome == "discarded" and st.accepted_stage == 4
    assert decisions[0].action == "back-off" and "x significantly worse" in decisions[0].reason
    assert st.status["x"] == "mastered" and pol.next_step(st) is None
    # a below-gate node that fell significantly counts too (against the adapter the run had)
    pol, st = _finished_chain(tmp_path / "b", consolidate=True)
    outcome, decisions = pol.observe(st, pol.next_step(st), 5, {"z": binary([1] * 8), "y": binary([0] * 16),
                                                                "x": binary([1] * 8), "w": binary([1] * 8)}, {})
    assert outcome == "discarded" and "y significantly worse" in decisions[0].reason
    # a stage that raised: the run ends on what it had, no node backs off
    pol, st = _finished_chain(tmp_path / "c", consolidate=True)
    decisions = pol.stage_failed(st, pol.next_step(st), 5, "boom")
    assert [(d.node_id, d.action) for d in decisions] == [("*", "back-off")] and pol.next_step(st) is None
    assert [st.status[n] for n in "zyxw"] == ["mastered", "below-gate", "mastered", "mastered"]


@pytest.mark.parametrize("policy", ["gated", "fixed"])
def test_a_consolidated_run_through_the_flow_replays_to_its_record(prefect_harness, tmp_path: Path, policy: str) -> None:
    from flows.curriculum_flow import curriculum, replay_state
    from warehouse.db import Warehouse
    from warehouse.records import node_statuses

    graph, db = tiny_graph(tmp_path), tmp_path / "w.duckdb"
    overrides = {"max_steps": 6, "consolidate": True, "replay_each": 2, "freeze_lower": 0.5}
    curriculum(graph=str(graph), policy=policy, seed=1, warehouse=str(db), runs_dir=str(tmp_path / "runs"),
               run_id="c", train_overrides=overrides)
    wh = Warehouse(db)
    _, stages = wh.query("SELECT stage, node_id, kind, steps, status FROM stages ORDER BY stage")
    kinds = [s[2] for s in stages]
    assert kinds[-2:] == ["consolidate", "final"] and kinds.count("consolidate") == 1
    closing = stages[-2]
    assert closing[1] == "*" and closing[3] >= 1 and closing[4] in ("done", "discarded")
    # one round over both nodes' data: 2 epochs of 12 examples in batches of 4
    assert closing[3] == 6
    _, decided = wh.query("SELECT action FROM decisions WHERE run_id = 'c' AND stage = $1 AND node_id = '*' "
                          "AND action <> 'train'", [closing[0]])
    assert decided in ([("keep",)], [("back-off",)])
    pol = make_policy(policy, 1)
    st, next_stage = replay_state(wh, load_curriculum(graph), "c", pol, overrides=overrides)
    assert next_stage == closing[0] + 1 and st.consolidated
    assert st.status == node_statuses(wh, "c", closing[0]) and pol.next_step(st) is None
