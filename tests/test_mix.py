"""policy: mix (and skill-it, its variant that keeps held nodes at their weights) — the mixture's weights by hand, the frontier moving as nodes pass or spend their budgets, and a mix
run through the flow on the tiny model: its recorded mixture, and a kill and resume that changes no row."""

from __future__ import annotations

import math
import os
import shutil
import signal
from pathlib import Path

import pytest

from curriculum.stats.evidence import Evidence
from curriculum.policies.mix import draw_counts, draw_mixture, mixture_shares, skill_it_step, weighted_shares
from curriculum.policies.registry import make_policy
from curriculum.loading.validate import load_curriculum
from flows.planning import start_state
from helpers import chain_graph


def binary(right: list[int], pool: int | None = None) -> Evidence:
    return Evidence({(0, i + 1): float(v) for i, v in enumerate(right)}, True, pool or len(right))


def _chain(root: Path, gate: str = "{min_score: 0.5}") -> Path:
    """helpers.chain_graph under policy: mix, with every node's budget 8 steps."""
    return chain_graph(root, gate, head="policy: mix\n",
                       train="{epochs: 1, lr: 0.005, batch_size: 4, max_length: 64, max_steps: 8}")


def _start(root: Path, gate: str = "{min_score: 0.5}", policy: str = "mix"):
    loaded = load_curriculum(_chain(root, gate))
    return loaded, make_policy(policy), start_state(loaded, None)


def test_the_weights_follow_skill_its_update_on_the_graph(tmp_path: Path) -> None:
    _, pol, st = _start(tmp_path)
    pol.baseline(st, {n: binary([0] * 8) for n in "zyxw"})
    step = pol.next_step(st)
    # every node is open from the first stage (Skill-It mixes every skill; the graph weights, it does not wait).
    # Every gap is 0.5; z's weight also carries y's gap (y requires z), y's carries x's, x's and w's only their own:
    # log w_z = log w_y = 1.0 * (0.5 + 0.5), log w_x = log w_w = 0.5; softmax; 16 examples, no held node to replay
    assert step.kind == "mix" and step.data_nodes == ["z", "y", "x", "w"] and step.replay_nodes == []
    assert step.signals["log_w"] == {"z": 1.0, "y": 1.0, "x": 0.5, "w": 0.5}
    share_z = math.exp(1.0) / (2 * math.exp(1.0) + 2 * math.exp(0.5))
    assert step.weights == pytest.approx({"z": share_z, "y": share_z, "x": 0.5 - share_z, "w": 0.5 - share_z})
    assert step.mixture == {n: round(16 * step.weights[n]) for n in "zyxw"} == {"z": 5, "y": 5, "x": 3, "w": 3}
    # the budgets: max_steps 8 a node; the stage ends when the first node would overspend at its share (z: 8 / (5/16))
    assert st.budgets == {n: 8 for n in "zyxw"} and step.budget == math.ceil(8 * 16 / 5)
    # the pure parts, on their own
    assert skill_it_step({"a": 0.2}, ["a", "b"], {"a": 0.1, "b": 0.4, "c": 0.3}, {"a": ["c"]}, eta=2.0) == \
        pytest.approx({"a": 0.2 + 2.0 * 0.4, "b": 0.8})
    shares = mixture_shares({"a": 0.0, "b": 0.0}, ["a", "b"], ["m", "f"], ["f"], 0.3)
    assert shares == pytest.approx({"a": 0.35, "b": 0.35, "m": 0.1, "f": 0.2}) and sum(shares.values()) == pytest.approx(1)
    assert draw_counts(shares, {"a": 7, "b": 7, "m": 3, "f": 3}, ["a", "b"]) == {"a": 7, "b": 7, "m": 2, "f": 4}


def _zeros(*nodes: str) -> dict[str, Evidence]:
    return {n: binary([0] * 8) for n in nodes}


def test_a_node_that_passes_drops_to_replay_and_the_weights_move(tmp_path: Path) -> None:
    _, pol, st = _start(tmp_path)
    pol.baseline(st, _zeros(*"zyxw"))
    step = pol.next_step(st)
    # the stage's round was long (one pass over every open node's data): that is no reason to call y, x and w
    # spent with most of their budgets left; only the shortest round (round_steps, 4) at their share is
    outcome, decisions = pol.observe(st, step, 1, {"z": binary([1] * 8), **_zeros(*"yxw")},
                                     {"steps": 4, "stop_reason": "gate-met", "round_steps": 100})
    assert outcome == "done" and [(d.node_id, d.action) for d in decisions] == [("z", "pass")]
    assert st.status["z"] == "mastered" and st.spent == {n: round(4 * step.mixture[n] / 16) for n in "zyxw"}
    step = pol.next_step(st)
    assert step.data_nodes == ["y", "x", "w"] and step.replay_nodes == ["z"]
    # z leaves for the replay share (0.25, the default) and keeps its weight; y = 1.0 + (0.5 + x's 0.5),
    # x = 0.5 + 0.5, w = 0.5 + 0.5 (their gaps on stage 1's adapter): the open nodes split 0.75 by softmax
    assert step.signals["log_w"] == {"z": 1.0, "y": 2.0, "x": 1.0, "w": 1.0}
    share_y = 0.75 * math.exp(2.0) / (math.exp(2.0) + 2 * math.exp(1.0))
    assert step.weights == pytest.approx({"y": share_y, "x": (0.75 - share_y) / 2, "w": (0.75 - share_y) / 2, "z": 0.25})
    assert step.mixture == {"y": 7, "x": 3, "w": 3, "z": 4}


def test_a_node_below_its_gate_at_the_end_of_its_budget_stays_in_replay(tmp_path: Path) -> None:
    _, pol, st = _start(tmp_path)
    pol.baseline(st, _zeros(*"zyxw"))
    step = pol.next_step(st)
    # 16 steps at their shares: z and y (5/16) spent 5 of their 8 and cannot pay for a round of 4 even alone, so
    # they end below their gates; x and w (3/16) spent 3, and 5 left pays for one more round
    outcome, decisions = pol.observe(st, step, 1, {"z": binary([1, 1] + [0] * 6), **_zeros(*"yxw")},
                                     {"steps": 16, "stop_reason": "plateau", "round_steps": 16})
    assert outcome == "done" and [(d.node_id, d.action) for d in decisions] == [("z", "below-gate"), ("y", "below-gate")]
    assert "its budget is spent" in decisions[0].reason and st.status["z"] == "below-gate"
    nxt = pol.next_step(st)
    assert nxt.data_nodes == ["x", "w"] and nxt.replay_nodes == ["z", "y"]  # still replayed
    # a required gate: the strict back-off, everything that requires it skipped and out of the mix at once
    strict = tmp_path / "strict"
    strict.mkdir()
    _, pol, st = _start(strict, "{min_score: 0.5, required: true}")
    pol.baseline(st, _zeros(*"zyxw"))
    step = pol.next_step(st)
    _, decisions = pol.observe(st, step, 1, {"z": binary([1, 1] + [0] * 6), **_zeros(*"yxw")},
                               {"steps": 16, "stop_reason": "plateau", "round_steps": 16})
    assert [(d.node_id, d.action) for d in decisions] == [("z", "back-off"), ("y", "skip"), ("x", "skip")]
    assert pol.next_step(st).data_nodes == ["w"]


def test_skill_it_keeps_a_node_that_passes_at_its_weight_and_charges_by_the_whole_stage(tmp_path: Path) -> None:
    _, pol, st = _start(tmp_path, policy="skill-it")
    pol.baseline(st, _zeros(*"zyxw"))
    first = pol.next_step(st)
    # the first stage has no held node: the same as mix's
    assert first.signals["log_w"] == {"z": 1.0, "y": 1.0, "x": 0.5, "w": 0.5} and first.mixture == {"z": 5, "y": 5, "x": 3, "w": 3}
    outcome, decisions = pol.observe(st, first, 1, {"z": binary([1] * 8), **_zeros(*"yxw")},
                                     {"steps": 4, "stop_reason": "gate-met", "round_steps": 100})
    assert outcome == "done" and [(d.node_id, d.action) for d in decisions] == [("z", "pass")]
    assert "stays in the mix, its own gap no longer adding weight" in decisions[0].reason
    step = pol.next_step(st)
    assert step.data_nodes == ["y", "x", "w"] and step.replay_nodes == ["z"]
    # z stays in the softmax at its weight, which grows only by y's gap now (its own is met): z = 1.0 + 0.5;
    # y = 1.0 + (0.5 + x's 0.5), x = 0.5 + 0.5, w = 0.5 + 0.5 (their gaps on stage 1's adapter). No fixed replay
    # share: train.replay is not read
    assert step.signals["log_w"] == {"z": 1.5, "y": 2.0, "x": 1.0, "w": 1.0}
    norm = math.exp(1.5) + math.exp(2.0) + 2 * math.exp(1.0)
    shares = {"z": math.exp(1.5) / norm, "y": math.exp(2.0) / norm, "x": math.exp(1.0) / norm, "w": math.exp(1.0) / norm}
    assert step.weights == pytest.approx(shares)
    total = 12 / (1 - shares["z"])  # one pass over y, x and w's 4 examples each, z's share on top
    assert step.mixture == {n: round(total * shares[n]) for n in "yxwz"} == {"y": 7, "x": 3, "w": 3, "z": 4}
    # each open node is charged by its share of the whole stage, so the stage may run until y would overspend
    assert step.budget == math.ceil((8 - pol.spent["y"]) * 17 / 7)
    pol.observe(st, step, 2, {"z": binary([1] * 8), **_zeros(*"yxw")}, {"steps": 17, "stop_reason": "plateau",
                                                                         "round_steps": 4})
    assert pol.spent["x"] == pytest.approx(4 * 3 / 16 + 17 * 3 / 17)  # 3 of the stage's 17 examples were x's


def test_skill_it_keeps_a_node_below_its_gate_in_the_mix_and_a_forgotten_one_learns_again(tmp_path: Path) -> None:
    _, pol, st = _start(tmp_path, policy="skill-it")
    pol.baseline(st, _zeros(*"zyxw"))
    _, decisions = pol.observe(st, pol.next_step(st), 1, {"z": binary([1, 1] + [0] * 6), **_zeros(*"yxw")},
                               {"steps": 16, "stop_reason": "plateau", "round_steps": 16})
    assert [(d.node_id, d.action) for d in decisions] == [("z", "below-gate"), ("y", "below-gate")]
    assert "stays in the mix, held" in decisions[0].reason
    nxt = pol.next_step(st)
    assert nxt.data_nodes == ["x", "w"] and nxt.replay_nodes == ["z", "y"]
    # below their gates their own gaps stop counting; y still gains x's (x requires y, and x is learning), z nothing
    assert nxt.signals["log_w"] == {"z": 1.0, "y": 1.5, "x": 1.0, "w": 1.0} and set(nxt.signals["gaps"]) == {"x", "w"}
    # forgetting: w held from the baseline falls from 8/8 to 2/8 while z gains: kept, and w's gap counts again
    _, pol, st = _start(tmp_path, policy="skill-it")
    pol.baseline(st, {"z": binary([0] * 8), "y": binary([0] * 8), "x": binary([0] * 8), "w": binary([1] * 8)})
    outcome, decisions = pol.observe(st, pol.next_step(st), 1, {**_zeros(*"yx"), "z": binary([1] * 5 + [0] * 3, pool=16),
                                                               "w": binary([1, 1] + [0] * 6)},
                                     {"steps": 2, "stop_reason": "plateau", "round_steps": 2})
    assert outcome == "done" and ("w", "rehearse") in [(d.node_id, d.action) for d in decisions]
    assert any("its gap counts in the weights again" in d.reason for d in decisions)
    nxt = pol.next_step(st)
    assert st.status["w"] == "forgotten" and nxt.signals["gaps"]["w"] == 0.25
    assert nxt.signals["log_w"]["w"] == pytest.approx(pol.log_w["w"] + 0.25) and "1 forgotten, learning again" in nxt.reason


def test_a_held_prerequisite_of_many_open_nodes_takes_at_most_three_quarters_of_a_skill_it_stage() -> None:
    """A held node gains its open dependants' gaps every stage; with three of them its softmax share heads for 1,
    and a stage (one pass over the open data, the held on top) would grow without end. The cap holds it."""
    members, held, sizes = ["root", "a", "b", "c"], ["root"], {"root": 100, "a": 100, "b": 100, "c": 100}
    log_w: dict[str, float] = {}
    for _ in range(12):
        log_w = skill_it_step(log_w, members, {"a": 0.5, "b": 0.5, "c": 0.5}, {"root": ["a", "b", "c"]})
        shares = weighted_shares(log_w, members, held)
        counts = draw_counts(shares, sizes, ["a", "b", "c"])
        assert sum(shares.values()) == pytest.approx(1) and shares["root"] <= 0.75 + 1e-12
        assert sum(counts.values()) <= 4 * 300 + len(counts)  # at most 4 passes over the open nodes' data
    assert weighted_shares(log_w, members)["root"] > 0.99  # uncapped, what the cap stops
    assert shares == pytest.approx({"root": 0.75, "a": 0.25 / 3, "b": 0.25 / 3, "c": 0.25 / 3})
    # under the cap nothing moves: the softmax as it is
    assert weighted_shares({"root": 0.0, "a": 0.0}, ["root", "a"], ["root"]) == {"root": 0.5, "a": 0.5}
    # far ahead (a prerequisite of stuck nodes, stage after stage) the cap still holds, with no rounding to a 0 share
    for ahead in (40.0, 800.0):
        far = weighted_shares({"root": ahead, "a": 0.0, "b": 1.0}, ["root", "a", "b"], ["root"])
        assert far == pytest.approx({"root": 0.75, "a": 0.25 / (1 + math.e), "b": 0.25 * math.e / (1 + math.e)})
        assert sum(draw_counts(far, {"root": 100, "a": 100, "b": 100}, ["a", "b"]).values()) == 800


def test_a_pass_in_the_stage_where_a_required_prerequisite_fails_is_kept_whatever_the_order(tmp_path: Path) -> None:
    """Under mix a node trains beside its prerequisites, so it can pass before one of them fails a `required` gate:
    its pass stands, in the same stage as in an earlier one, and only what is still open below the failure is
    skipped."""
    _, pol, st = _start(tmp_path, "{min_score: 0.5, required: true}")
    pol.baseline(st, _zeros(*"zyxw"))
    step = pol.next_step(st)
    _, decisions = pol.observe(st, step, 1, {"z": binary([1, 1] + [0] * 6), "y": binary([1] * 8), **_zeros(*"xw")},
                               {"steps": 16, "stop_reason": "plateau", "round_steps": 16})
    assert [(d.node_id, d.action) for d in decisions] == [("y", "pass"), ("z", "back-off"), ("x", "skip")]
    assert st.status["y"] == "mastered" and pol.next_step(st).data_nodes == ["w"]
    # y passed a stage earlier, z fails now: the same end
    _, pol, st = _start(tmp_path, "{min_score: 0.5, required: true}")
    pol.baseline(st, _zeros(*"zyxw"))
    pol.observe(st, pol.next_step(st), 1, {"y": binary([1] * 8), **_zeros(*"zxw")},
                {"steps": 4, "stop_reason": "gate-met", "round_steps": 16})
    _, decisions = pol.observe(st, pol.next_step(st), 2, {"z": binary([1, 1] + [0] * 6), **_zeros(*"xw")},
                               {"steps": 12, "stop_reason": "plateau", "round_steps": 16})
    assert ("z", "back-off") in [(d.node_id, d.action) for d in decisions] and st.status["y"] == "mastered"
    assert st.status["x"] == "skipped"


def test_a_mix_stage_that_made_what_the_run_held_worse_is_discarded(tmp_path: Path) -> None:
    _, pol, st = _start(tmp_path)
    pol.baseline(st, {"z": binary([0] * 8), "y": binary([0] * 8), "x": binary([0] * 8), "w": binary([1] * 8)})
    assert st.status["w"] == "mastered"
    step = pol.next_step(st)
    assert step.data_nodes == ["z", "y", "x"] and step.replay_nodes == ["w"]
    # nothing open learned, w fell from 8/8 to 2/8 on the same items: the adapter is discarded, the budget still spent
    outcome, decisions = pol.observe(st, step, 1, {**_zeros(*"zyx"), "w": binary([1, 1] + [0] * 6)},
                                     {"steps": 6, "stop_reason": "plateau", "round_steps": 2})
    assert outcome == "discarded" and decisions[0].action == "back-off" and "made w significantly worse" in decisions[0].reason
    open_total = sum(step.mixture[n] for n in "zyx")
    assert st.accepted_stage is None and st.status["w"] == "mastered"
    assert st.spent == {n: round(6 * step.mixture[n] / open_total) for n in "zyx"} and st.spent["z"] > 0
    # the same fall with z significantly better: kept, w forgotten and replayed at twice the weight
    _, pol, st = _start(tmp_path)
    pol.baseline(st, {"z": binary([0] * 8), "y": binary([0] * 8), "x": binary([0] * 8), "w": binary([1] * 8)})
    outcome, decisions = pol.observe(st, pol.next_step(st), 1, {**_zeros(*"yx"), "z": binary([1] * 5 + [0] * 3, pool=16),
                                                               "w": binary([1, 1] + [0] * 6)},
                                     {"steps": 2, "stop_reason": "plateau", "round_steps": 2})
    assert outcome == "done" and ("w", "rehearse") in [(d.node_id, d.action) for d in decisions]
    assert st.status["w"] == "forgotten" and pol.next_step(st).weights["w"] == pytest.approx(0.25)


def test_draws_are_whole_passes_then_a_sample() -> None:
    from curriculum.models.chat import Example

    pool = [Example(f"p{i}", f"a{i}", f"f:{i}") for i in range(4)]
    drawn = draw_mixture({"n": pool}, {"n": 10}, seed=3)
    assert len(drawn) == 10 and all(drawn[:8].count(ex) == 2 for ex in pool)
    assert drawn == draw_mixture({"n": pool}, {"n": 10}, seed=3)  # seeded


@pytest.mark.timeout(900)
def test_a_mix_run_records_its_mixture_and_resumes_to_the_same_rows(prefect_harness, tmp_path: Path) -> None:
    import prefect.settings

    from flows.curriculum_flow import curriculum
    from test_resume import TABLES, _finish, _run, warehouse_rows
    from warehouse.db import Warehouse

    ref = tmp_path / "ref"
    ref.mkdir()
    graph = _chain(ref)
    curriculum(graph=str(graph), warehouse=str(ref / "w.duckdb"), runs_dir=str(ref / "runs"), run_id="mx")
    wh = Warehouse(ref / "w.duckdb")
    _, stages = wh.query("SELECT stage, kind FROM stages ORDER BY stage")
    assert [k for _, k in stages[:-1]] == ["mix"] * (len(stages) - 1) and stages[-1][1] == "final" and len(stages) >= 3
    # what each stage was fed: its weights add up to 1, its examples to what the stage trained on
    _, mixture = wh.query("SELECT stage, sum(weight), sum(examples), count(*) FILTER (WHERE role = 'frontier') "
                          "FROM stage_mixture GROUP BY stage ORDER BY stage")
    for stage, weight, examples, frontier in mixture:
        record = __import__("json").loads((ref / "runs" / "mx" / f"stage-{stage}" / "stage.json").read_text())
        assert weight == pytest.approx(1.0) and examples == record["examples"] and frontier >= 1
    from warehouse.report import render_report

    page = render_report(wh, "mx")  # the report draws it
    assert 'id="mixture"' in page and all(f"<td>{n}</td><td>frontier</td>" in page for n in "zyxw")
    _, ends = wh.query("SELECT node_id, status FROM final_status WHERE run_id = 'mx' ORDER BY node_id")
    assert {s for _, s in ends} <= {"mastered", "below-gate", "forgotten"}  # every node was reached

    # a run whose record mixed another frontier (a mix from before a change to the policy) is refused, not replayed
    # under rules that would probe nodes it never probed
    import duckdb

    from curriculum.policies.registry import make_policy as policy_named
    from flows.curriculum_flow import replay_state

    tampered = tmp_path / "tampered.duckdb"
    shutil.copy(ref / "w.duckdb", tampered)
    with duckdb.connect(str(tampered)) as con:
        con.execute("DELETE FROM stage_mixture WHERE stage = 1 AND node_id = 'x'")
    replay_state(Warehouse(ref / "w.duckdb"), load_curriculum(graph), "mx", policy_named("mix"))  # the record as made
    with pytest.raises(ValueError, match="mixing w, y, z \\(.*\\), but replaying its record picks mix of \\* attempt 1 mixing w, x, y, z"):
        replay_state(Warehouse(tampered), load_curriculum(graph), "mx", policy_named("mix"))
    # the same frontier drawn in other amounts (a change to the weights) is refused too
    shutil.copy(ref / "w.duckdb", tampered)
    with duckdb.connect(str(tampered)) as con:
        drawn = con.execute("SELECT examples FROM stage_mixture WHERE stage = 1 AND node_id = 'z'").fetchone()[0]
        con.execute("UPDATE stage_mixture SET examples = examples + 1 WHERE stage = 1 AND node_id = 'z'")
    with pytest.raises(ValueError, match=f"mixing w, x, y, z \\(w \\d+, x \\d+, y \\d+, z {drawn + 1}\\), but .* "
                                         f"mixing w, x, y, z \\(w \\d+, x \\d+, y \\d+, z {drawn}\\)"):
        replay_state(Warehouse(tampered), load_curriculum(graph), "mx", policy_named("mix"))

    run = tmp_path / "run"
    run.mkdir()
    for f in ref.glob("*.jsonl"):
        shutil.copy(f, run)
    graph = Path(shutil.copy(ref / "chain.yaml", run))
    common = [str(graph), "--db", str(run / "w.duckdb"), "--runs-dir", str(run / "runs")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PREFECT_API_URL": prefect.settings.PREFECT_API_URL.value()}
    proc = _run([*common, "--run-id", "mx"], {**env, "CURRICULUM_KILL_AT": "stage:2"}, run / "killed.log")
    out = _finish(proc, run / "killed.log")
    assert proc.returncode == -signal.SIGKILL, out
    proc = _run([*common, "--resume", "mx"], env, run / "resumed.log")
    out = _finish(proc, run / "resumed.log")
    assert proc.returncode == 0, out
    want, got = warehouse_rows(ref / "w.duckdb", "mx"), warehouse_rows(run / "w.duckdb", "mx")
    for table in [*TABLES, "stage_mixture"]:
        if table == "stage_mixture":
            want[table] = Warehouse(ref / "w.duckdb").query("SELECT * FROM stage_mixture ORDER BY stage, node_id")[1]
            got[table] = Warehouse(run / "w.duckdb").query("SELECT * FROM stage_mixture ORDER BY stage, node_id")[1]
        assert got[table] == want[table], f"{table} differs from the uninterrupted run"


@pytest.mark.timeout(900)
def test_a_skill_it_run_goes_through_the_flow_and_its_record_replays(prefect_harness, tmp_path: Path) -> None:
    """The variant through the same loop: its mixture recorded (weights adding up to 1, the held nodes at most 3/4),
    its report saying how held nodes were weighted, and its record replayed by the same policy to the same state."""
    from curriculum.policies.registry import make_policy as policy_named
    from flows.curriculum_flow import curriculum, replay_state
    from warehouse.db import Warehouse
    from warehouse.report import render_report

    graph = _chain(tmp_path)
    curriculum(graph=str(graph), policy="skill-it", warehouse=str(tmp_path / "w.duckdb"), runs_dir=str(tmp_path / "runs"),
               run_id="sk")
    wh = Warehouse(tmp_path / "w.duckdb")
    assert wh.query("SELECT policy, status FROM runs")[1] == [("skill-it", "completed")]
    _, mixture = wh.query("SELECT stage, sum(weight), coalesce(sum(weight) FILTER (WHERE role = 'replay'), 0) "
                          "FROM stage_mixture GROUP BY stage ORDER BY stage")
    assert mixture and all(w == pytest.approx(1.0) and held <= 0.75 + 1e-9 for _, w, held in mixture)
    # a stage with held nodes gave them their softmax weights, not mix's fixed replay share (0.25, the default)
    assert any(held > 0 and held != pytest.approx(0.25) for _, _, held in mixture), mixture
    assert "at their own weights" in render_report(wh, "sk")
    st, next_stage = replay_state(wh, load_curriculum(graph), "sk", policy_named("skill-it"))
    assert next_stage == len(mixture) + 1 and all(s in {"mastered", "below-gate", "forgotten"} for s in st.status.values())
