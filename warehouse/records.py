"""What a run writes and reads back: each unit of work lands in one short transaction.

A stage's row, its loss curve, its probe rows and its decisions commit together, so a run
killed at any moment leaves either the whole stage or none of it; resume reads them back.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import yaml

from warehouse.db import Warehouse


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _decision_rows(run_id: str, first_seq: int, stage: int | None, decisions: Sequence[dict[str, Any]]) -> list[dict]:
    return [
        {**d, "run_id": run_id, "seq": first_seq + i, "stage": stage,
         "signals": json.dumps(d.get("signals") or {}, default=str), "decided_at": _now()}
        for i, d in enumerate(decisions)
    ]


def _next_seq(con, run_id: str) -> int:
    return con.execute("SELECT coalesce(max(seq), 0) + 1 FROM decisions WHERE run_id = ?", [run_id]).fetchone()[0]


def start_run(wh: Warehouse, run_id: str, *, curriculum: str, graph_path: str, yaml_text: str, graph_hash: str,
              policy: str, seed: int, base_model: str, config: dict[str, Any], parent_run: str | None = None,
              files: Sequence[dict[str, Any]] = (), texts: Sequence[tuple[str, str]] = ()) -> None:
    """The graph snapshot (once per distinct YAML), the run's row (with the run it continues, if any), the
    hashes of its data and probe files per node, and their texts (sha256, text; once per distinct content)."""
    with wh.transaction() as con:
        con.execute(
            "INSERT INTO graph_snapshots (graph_hash, curriculum, path, yaml_text) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [graph_hash, curriculum, graph_path, yaml_text],
        )
        for sha, text in texts:
            con.execute("INSERT INTO file_snapshots (sha256, text) VALUES (?, ?) ON CONFLICT DO NOTHING", [sha, text])
        con.execute(
            "INSERT INTO runs (run_id, curriculum, graph_hash, policy, seed, base_model, status, config, parent_run) "
            "VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?)",
            [run_id, curriculum, graph_hash, policy, seed, base_model, json.dumps(config, default=str), parent_run],
        )
        wh.append(con, "run_files", [{**f, "run_id": run_id} for f in files])


def get_run(wh: Warehouse, run_id: str) -> dict[str, Any] | None:
    if not wh.path.exists():
        return None
    cols, rows = wh.query("SELECT * FROM runs WHERE run_id = ?", [run_id])
    return dict(zip(cols, rows[0])) if rows else None


def note_resumed_code(wh: Warehouse, run_id: str, code: dict[str, Any]) -> None:
    """A run resumed by other code than started it: `config.resumed_under` lists each such code, in order, so a
    run made by two versions says so instead of passing for the first one's."""
    run = get_run(wh, run_id)
    if run is None:
        raise KeyError(run_id)
    config = json.loads(run["config"] or "{}")
    config["resumed_under"] = [*config.get("resumed_under", []), code]
    with wh.transaction() as con:
        con.execute("UPDATE runs SET config = ? WHERE run_id = ?", [json.dumps(config, default=str), run_id])


def run_code(run: dict[str, Any]) -> str | None:
    """Which code made a run, from its row: its fingerprint, '+' each other one it was resumed under; None for a run
    recorded before fingerprints were."""
    config = json.loads(run.get("config") or "{}")
    codes = [c.get("fingerprint") for c in [config.get("code") or {}, *config.get("resumed_under", [])]]
    return "+".join(c for c in codes if c) or None


def run_files(wh: Warehouse, run_id: str) -> dict[str, str]:
    """path -> sha256 of every data and probe file the run was made from (empty for runs recorded before)."""
    if not wh.has_table("run_files"):
        return {}
    return dict(wh.query("SELECT DISTINCT path, sha256 FROM run_files WHERE run_id = ? ORDER BY path", [run_id])[1])


def run_list(wh: Warehouse) -> list[dict[str, Any]]:
    """Every run in the warehouse, newest first: id, curriculum, graph file, policy, seed, status, stages trained
    (the final sweep is not a training stage), start and end (UTC), and the error of a failed one."""
    if not wh.path.exists():
        return []
    cols, rows = wh.query(
        """
        SELECT r.run_id, r.curriculum, g.path AS graph, r.policy, r.seed, r.status,
               (SELECT count(*) FROM stages s WHERE s.run_id = r.run_id AND s.kind <> 'final') AS stages,
               r.started_at, r.finished_at, r.error
        FROM runs r LEFT JOIN graph_snapshots g USING (graph_hash)
        ORDER BY r.started_at DESC, r.run_id
        """)
    return [dict(zip(cols, row)) for row in rows]


def set_run_status(wh: Warehouse, run_id: str, status: str, error: str | None = None) -> None:
    """running | completed | failed (with its error) | interrupted (found dead at resume: counted)."""
    with wh.transaction() as con:
        con.execute("UPDATE runs SET status = ?, finished_at = ?, error = ?, "
                    "interruptions = coalesce(interruptions, 0) + ? WHERE run_id = ?",
                    [status, _now() if status != "running" else None, error, int(status == "interrupted"), run_id])


def record_probes_and_decisions(wh: Warehouse, run_id: str, stage: int, probe_rows: Sequence[dict],
                                decisions: Sequence[dict], stage_row: dict | None = None,
                                steps: Sequence[dict] = (), baseline_probe_s: float | None = None,
                                node_scores: Sequence[dict] = (), node_status: Sequence[dict] = (),
                                mixture: Sequence[dict] = (), exam_scores: Sequence[dict] = ()) -> None:
    """One stage (or the baseline, stage 0) in one transaction."""
    with wh.transaction() as con:
        if baseline_probe_s is not None:
            con.execute("UPDATE runs SET baseline_probe_s = ? WHERE run_id = ?", [baseline_probe_s, run_id])
        if stage_row is not None:
            wh.append(con, "stages", [{**stage_row, "run_id": run_id, "stage": stage}])
            wh.append(con, "train_steps", [{**s, "run_id": run_id, "stage": stage} for s in steps])
        wh.append(con, "probe_results", [{**r, "run_id": run_id, "stage": stage} for r in probe_rows])
        wh.append(con, "node_scores", [{**r, "run_id": run_id, "stage": stage} for r in node_scores])
        wh.append(con, "node_status", [{**r, "run_id": run_id, "stage": stage} for r in node_status])
        wh.append(con, "stage_mixture", [{**r, "run_id": run_id, "stage": stage} for r in mixture])
        wh.append(con, "exam_scores", [{**r, "run_id": run_id, "stage": stage} for r in exam_scores])
        wh.append(con, "decisions", _decision_rows(run_id, _next_seq(con, run_id), stage, decisions))


@dataclass
class History:
    """A run's recorded stages, read back to replay them on resume."""

    stages: dict[int, dict[str, Any]] = field(default_factory=dict)
    # stage -> node -> (probe_index, item, probe_kind, score) of every item it was probed on
    item_scores: dict[int, dict[str, list[tuple[int, int, str, float]]]] = field(default_factory=dict)

    @property
    def has_baseline(self) -> bool:
        return 0 in self.item_scores or bool(self.stages)


def load_history(wh: Warehouse, run_id: str) -> History:
    history = History()
    cols, rows = wh.query("SELECT * FROM stages WHERE run_id = ? ORDER BY stage", [run_id])
    for row in rows:
        rec = dict(zip(cols, row))
        history.stages[rec["stage"]] = rec
    _, rows = wh.query("SELECT stage, node_id, probe_index, item, probe_kind, score FROM probe_results WHERE run_id = ? "
                       f"{wh.not_exam()} ORDER BY stage, node_id, probe_index, item", [run_id])  # replay: what it decided on
    scores: dict[int, dict[str, list[tuple[int, int, str, float]]]] = defaultdict(lambda: defaultdict(list))
    for stage, node, probe_index, item, kind, score in rows:
        scores[stage][node].append((probe_index, item, kind, score))
    history.item_scores = {s: dict(nodes) for s, nodes in scores.items()}
    if wh.has_table("stage_mixture"):  # what a mix stage drew, so a replay can tell a policy that mixes differently
        _, rows = wh.query("SELECT stage, node_id, role, examples FROM stage_mixture WHERE run_id = ? "
                           "ORDER BY stage, node_id", [run_id])
        for stage, node, role, examples in rows:
            if stage in history.stages:
                rec = history.stages[stage]
                rec.setdefault("frontier", [])
                rec.setdefault("drawn", {})[node] = examples
                if role == "frontier":
                    rec["frontier"].append(node)
    _, baseline_decisions = wh.query("SELECT count(*) FROM decisions WHERE run_id = ? AND stage = 0", [run_id])
    if baseline_decisions[0][0] and 0 not in history.item_scores:
        history.item_scores[0] = {}
    return history


def mastery_table(wh: Warehouse, run_id: str) -> tuple[list[str], list[tuple]]:
    """Per node: the policy's end status; the base model's score on its check items (read before any decision, so
    not chosen to look good); the verdict: the final score with its n and interval, on the node's exam items
    (`split` 'exam') or, for a node too small to split, on its items (`split` 'unsplit'); the last score the run
    itself saw on its check items (`check`), the best accepted one, and the last decision."""
    exam = ("SELECT run_id, stage, node_id, score, n_items, ci_low, ci_high FROM exam_scores WHERE run_id = $1"
            if wh.has_table("exam_scores") else  # a warehouse written before the split: every verdict unsplit
            "SELECT NULL::VARCHAR AS run_id, NULL::INTEGER AS stage, NULL::VARCHAR AS node_id, NULL::DOUBLE AS score, "
            "NULL::INTEGER AS n_items, NULL::DOUBLE AS ci_low, NULL::DOUBLE AS ci_high WHERE false")
    return wh.query(
        f"""
        WITH m AS (SELECT * FROM mastery_matrix WHERE run_id = $1 AND accepted),
        e AS ({exam}),
        last_decision AS (
            SELECT node_id, arg_max(action, seq) AS last_action FROM decisions
            WHERE run_id = $1 AND node_id IS NOT NULL AND action <> 'train' GROUP BY node_id)
        SELECT f.node_id, f.status,
               max(CASE WHEN m.stage = 0 THEN m.score END) AS baseline,
               coalesce(any_value(ef.score), any_value(f.score)) AS final,
               coalesce(any_value(ef.n_items), any_value(ns.n_items)) AS n,
               coalesce(any_value(ef.ci_low), any_value(ns.ci_low)) AS ci_low,
               coalesce(any_value(ef.ci_high), any_value(ns.ci_high)) AS ci_high,
               CASE WHEN any_value(ef.score) IS NULL THEN 'unsplit' ELSE 'exam' END AS split,
               any_value(f.score) AS "check",
               any_value(ns.n_items) AS check_n,
               max(m.score) AS best,
               count(DISTINCT m.stage) AS probed_at,
               any_value(d.last_action) AS last_action
        FROM final_status f
        LEFT JOIN m USING (run_id, node_id)
        LEFT JOIN node_scores ns ON ns.run_id = f.run_id AND ns.node_id = f.node_id AND ns.stage = f.scored_at
        LEFT JOIN e ef ON ef.node_id = f.node_id  -- a run reads its exam once, in its final sweep
        LEFT JOIN last_decision d ON d.node_id = f.node_id
        WHERE f.run_id = $1
        GROUP BY f.node_id, f.status ORDER BY f.node_id
        """,
        [run_id],
    )


def node_statuses(wh: Warehouse, run_id: str, stage: int | None = None) -> dict[str, str]:
    """The policy's recorded status of each node after `stage` (default: the last one recorded)."""
    _, rows = wh.query(
        "SELECT node_id, arg_max(status, stage) FROM node_status WHERE run_id = $1 AND ($2 IS NULL OR stage <= $2) "
        "GROUP BY node_id", [run_id, stage])
    return dict(rows)


def end_state(wh: Warehouse, run_id: str) -> dict[str, dict[str, Any]]:
    """Each node on the run's final sweep (the base model's baseline when no stage was kept), so a benchmark counts
    gates held at the end, not passes on the way. Its verdict: `score` with its `n`, two-sided 95 % bounds and
    `item_scores` (by probe and item, the same items in every run of the graph) are the node's exam where it was split
    (`split` 'exam'), else its items, which also steered the run (`split` 'unsplit', or 'none' for a node split for
    the run whose exam was never read: no final sweep); `check_score`, `check_n`, the
    one-sided `check_low`/`check_high` and `gate` are what the run itself saw. `answers` and `references` count the
    verdict items' outputs and expected answers (stripped, lower case), so a reader can tell a model that says one
    thing to every question from one that learned: a verdict against such a model is not a fair comparison."""
    final = "coalesce((SELECT max(stage) FROM stages WHERE run_id = $1 AND kind = 'final'), 0)"
    cols, rows = wh.query(f"SELECT node_id, score, n_items, pool, ci_low, ci_high, gate FROM node_scores "
                          f"WHERE run_id = $1 AND stage = {final}", [run_id])
    out: dict[str, dict[str, Any]] = {}
    for node, score, n, pool, low, high, gate in rows:
        out[node] = {"score": score, "n": n, "n_items": n, "ci_low": low, "ci_high": high, "split": "unsplit",
                     "gate": gate, "pool": pool, "check_score": score, "check_n": n, "check_low": low, "check_high": high,
                     "item_scores": [], "answers": Counter(), "references": Counter()}
    split = wh.has_table("exam_scores")
    _, config = wh.query("SELECT config FROM runs WHERE run_id = $1", [run_id])
    exam_config = json.loads(config[0][0] or "{}").get("exam") if config else None
    if exam_config is not None:  # a node split for this run whose exam was never read (no final sweep): not unsplit
        for node, entry in out.items():
            if node not in exam_config.get("unsplit", {}):
                entry["split"] = "none"
    if split:
        _, exams = wh.query(f"SELECT node_id, score, n_items, ci_low, ci_high FROM exam_scores WHERE run_id = $1 "
                            f"AND stage = {final}", [run_id])
        for node, score, n, low, high in exams:
            if node in out:
                out[node].update(score=score, n=n, n_items=n, ci_low=low, ci_high=high, split="exam")
    side = "split" if split else "'unsplit'"  # a warehouse written before the split has no column for it
    _, items = wh.query(
        f"SELECT node_id, {side}, score, output, reference FROM probe_results "
        f"WHERE run_id = $1 AND stage = {final} ORDER BY node_id, probe_index, item", [run_id])
    for node, side, score, output, reference in items:
        if node in out and (side == "exam") == (out[node]["split"] == "exam"):
            out[node]["item_scores"].append(score)
            out[node]["answers"][(output or "").strip().lower()] += 1
            out[node]["references"][(reference or "").strip().lower()] += 1
    return out


def policy_summary(wh: Warehouse, run_id: str) -> dict[str, Any]:
    """What bench/curriculum.py compares across policies, for one run: cost (train_s: optimizer time, checks
    excluded; probe_s: baseline, checks and probe sweeps; verdict_s: the part of probe_s that is the final sweep,
    which no decision reads), and each stage's mastered nodes by the policy's own recorded statuses."""
    _, rows = wh.query(
        """
        SELECT coalesce(sum(steps), 0), coalesce(sum(tokens), 0), coalesce(sum(seconds), 0) - coalesce(sum(check_s), 0),
               coalesce(sum(train_wall_s), 0), coalesce(sum(probe_s), 0) + coalesce(sum(check_s), 0),
               count(*) FILTER (WHERE kind <> 'final'),
               (SELECT coalesce(baseline_probe_s, 0) FROM runs WHERE run_id = $1),
               coalesce(sum(probe_s) FILTER (WHERE kind = 'final'), 0)
        FROM stages WHERE run_id = $1
        """, [run_id])
    steps, tokens, train_s, train_wall_s, probe_s, stages, baseline_s, verdict_s = rows[0]
    _, bwt = wh.query("SELECT avg(bwt) FROM forgetting WHERE run_id = $1", [run_id])
    _, per_stage = wh.query("SELECT stage, coalesce(steps, 0), coalesce(tokens, 0) FROM stages WHERE run_id = $1 "
                            "ORDER BY stage", [run_id])
    _, statuses = wh.query("SELECT stage, list(node_id ORDER BY node_id) FILTER (WHERE status = 'mastered') "
                           "FROM node_status WHERE run_id = $1 GROUP BY stage ORDER BY stage", [run_id])
    _, checks = wh.query("SELECT stage, checks FROM stages WHERE run_id = $1 AND kind = 'flat'", [run_id])
    _, drift = wh.query("SELECT s.drift FROM stages f JOIN stages s ON s.run_id = f.run_id AND s.stage = f.parent_stage "
                        "WHERE f.run_id = $1 AND f.kind = 'final'", [run_id])  # of the adapter the run ends with
    return {"drift": drift[0][0] if drift else None, "per_stage": per_stage, "steps": steps, "tokens": tokens, "train_s": train_s, "train_wall_s": train_wall_s,
            "probe_s": probe_s + baseline_s, "verdict_s": verdict_s, "stages": stages, "bwt": bwt[0][0] or 0.0,
            "mastered_after": [(stage, list(nodes or [])) for stage, nodes in statuses],
            "flat_checks": [(stage, json.loads(c) if c else []) for stage, c in checks]}


def run_lexicon(wh: Warehouse, run_id: str) -> list[str]:
    """The hyperwords of the curriculum a run was made from (its YAML snapshot's lexicon)."""
    _, rows = wh.query("SELECT g.yaml_text FROM runs r JOIN graph_snapshots g USING (graph_hash) WHERE r.run_id = $1",
                       [run_id])
    doc = yaml.safe_load(rows[0][0]) if rows else None
    lexicon = doc.get("lexicon") if isinstance(doc, dict) else None
    return [str(e["word"]) for e in lexicon or [] if isinstance(e, dict) and "word" in e]


def final_adapter(wh: Warehouse, run_id: str) -> tuple[str, str | None]:
    """(base model, adapter of the run's last accepted stage or None) — what the run ended with."""
    _, run = wh.query("SELECT base_model FROM runs WHERE run_id = $1", [run_id])
    if not run:
        raise KeyError(f"no run '{run_id}' in {wh.path}")
    _, rows = wh.query("SELECT adapter_path FROM stages WHERE run_id = $1 AND status = 'done' ORDER BY stage DESC LIMIT 1",
                       [run_id])
    return run[0][0], rows[0][0] if rows else None


def run_for_export(wh: Warehouse, run_id: str) -> dict[str, Any]:
    """What an export says about a run: its row, the YAML path it ran from, its final adapter (None when
    no stage was kept) and its mastery table (columns, rows)."""
    if not wh.path.exists():
        raise FileNotFoundError(f"{wh.path}: no warehouse here (pass --db)")
    run = get_run(wh, run_id)
    if run is None:
        raise KeyError(f"no run '{run_id}' in {wh.path}")
    _, path = wh.query("SELECT path FROM graph_snapshots WHERE graph_hash = $1", [run["graph_hash"]])
    _, adapter = final_adapter(wh, run_id)
    return {**run, "config": json.loads(run["config"] or "{}"), "graph_path": path[0][0] if path else None,
            "adapter": adapter, "mastery": mastery_table(wh, run_id)}
