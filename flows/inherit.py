"""`curriculum run GRAPH --from RUN_ID`: a new run that starts where a finished run ended, on an edited graph.

Kept nodes keep their status and the items they were mastered on; training goes on from the parent's last
accepted adapter, copied into the new run's folder as stage-0 so the run stands on its own; new and changed
nodes, and what requires them, start fresh. The first probe (stage 0) runs on that adapter: a scheduled
node already over its gate passes there as at any baseline, and an inherited mastered node that no longer
holds is rehearsed (the policy's forgetting test). Live and on resume the same `apply` builds the state.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from curriculum.training import integrity
from curriculum.policies.draws import pool_keys
from curriculum.stats.evidence import evidence_from
from curriculum.runs.lineage import GraphDiff, Snapshot, diff_graphs
from curriculum.policies.runstate import Decision, Observed, Policy, RunState
from curriculum.policies.states import Action, Status
from curriculum.loading.validate import LoadedCurriculum
from warehouse import lineage as rows
from warehouse import records
from warehouse.db import Warehouse

ADAPTER = "stage-0"  # the parent's adapter, copied: a --from run's stage 0 (the base model's place in a fresh run)


def parent_snapshot(wh: Warehouse, run_id: str) -> Snapshot:
    run = rows.run_snapshot(wh, run_id)
    if run is None:
        raise ValueError(f"no run '{run_id}' in {wh.path}")
    config = json.loads(run["config"] or "{}")
    return Snapshot(run_id, run["yaml_text"], run["status"], run["policy"], run["base_model"], config.get("nodes"),
                    run["files"], run["node_status"])


def plan_from(wh: Warehouse, loaded: LoadedCurriculum, parent: str) -> GraphDiff:
    """What changed since the parent run, and what --from does with each node (`curriculum diff`)."""
    return diff_graphs(parent_snapshot(wh, parent), loaded)


def prepare(wh: Warehouse, loaded: LoadedCurriculum, parent: str, policy: str) -> dict[str, Any]:
    """Check that the run can be continued (before anything is written) and return what the new run's
    config records of it: the parent, its adapter and each node's plan."""
    diff = plan_from(wh, loaded, parent)
    problems = list(diff.blockers)
    if policy == "flat":
        problems.append("the flat policy trains every node in one stage, so it has nothing to inherit")
    _, adapter = records.final_adapter(wh, parent)
    if adapter is not None and not Path(adapter).is_dir():
        problems.append(f"its last accepted adapter {adapter} is missing (run from the folder it was run in)")
    elif adapter is not None:
        try:
            integrity.check(Path(adapter))  # a damaged adapter would be copied on and die loading: refuse it now
        except integrity.IntegrityError as exc:
            problems.append(str(exc))
    if problems:
        raise ValueError(f"cannot continue run '{parent}': " + "; ".join(problems))
    return {"from_run": parent, "from_adapter": adapter,
            "inherit": {n: {"action": p.action, "reason": p.reason, "status": p.status} for n, p in diff.plan.items()}}


@dataclass
class Lineage:
    """A --from run's start: its parent, the adapter it continues, and the decisions that say so."""

    parent: str
    adapter: Path | None
    plan: dict[str, dict[str, Any]]
    mastered_at: dict[str, tuple[str, int]]
    decisions: list[Decision] = field(default_factory=list)  # recorded at stage 0, before the baseline's own

    def recheck(self, st: RunState, pol: Policy, baseline: Observed) -> list[Decision]:
        """After the first probe: each kept node with its score on the inherited adapter, and the policy's
        forgetting test on the mastered ones (rehearsed when they no longer hold)."""
        out = []
        for n in st.order:
            p = self.plan.get(n, {})
            if p.get("action") != "keep":
                continue
            ev = baseline.get(n)
            call = st.call(n, ev) if ev is not None else None
            reason = (f"{p['status']} in run '{self.parent}', unchanged: kept, not trained again"
                      + (f"; on its adapter: {call.describe(st.gate(n), st.confidence(n))}" if call else ""))
            where = self.mastered_at.get(n)
            out.append(Decision.on(n, Action.INHERIT, reason, call, st.gate(n) if call else None, signals={
                "parent_run": self.parent, "status": p["status"],
                **({"mastered_on": {"run": where[0], "stage": where[1]}} if where and n in st.mastered_on else {})}))
        prefix = f"inherited from run '{self.parent}', re-checked on its adapter: "
        return out + [replace(d, reason=prefix + d.reason) for d in pol.recheck(st, baseline)]


def apply(wh: Warehouse, loaded: LoadedCurriculum, st: RunState, run_id: str, run_dir: Path | None = None
          ) -> Lineage | None:
    """Lay the parent's end state over a fresh RunState (kept statuses, mastered-on items, fixed auto gates,
    its adapter as stage 0); None for a run not made with --from. With run_dir, the adapter is copied there."""
    config = rows.run_config(wh, run_id)
    parent = config.get("from_run")
    if not parent:
        return None
    plan: dict[str, dict[str, Any]] = config["inherit"]
    where = rows.mastered_at(wh, parent)
    gates = rows.fixed_gates(wh, parent)
    decisions: list[Decision] = []
    for n in st.order:
        p = plan.get(n, {"action": "schedule", "reason": "new", "status": None})
        if p["action"] == "keep":
            st.status[n] = Status(p["status"])
            keys = set(pool_keys(loaded, n))
            if n in where:
                items = [r for r in rows.item_rows(wh, *where[n], n) if (r[0], r[1]) in keys]
                if items:
                    st.mastered_on[n] = evidence_from(items, len(keys))
        else:
            if p["action"] == "skip":
                st.status[n] = Status.SKIPPED
            decisions.append(Decision(n, Action(p["action"]), f"{p['reason']} (from run '{parent}')",
                                      signals={"parent_run": parent, "status": p["status"]}))
        if n in gates and loaded.spec.gate_config(n).min_score == "auto":
            st.auto_gates[n] = gates[n]
            decisions.append(Decision(n, Action.GATE, f"min_score auto: {gates[n]:.3f}, as fixed in run '{parent}'", gate=gates[n]))
    decisions += [Decision(n, Action.DROP, f"{p['reason']} (from run '{parent}')", signals={"parent_run": parent,
                                                                                     "status": p["status"]})
                  for n, p in plan.items() if p["action"] == "drop"]
    adapter = None
    if config.get("from_adapter"):
        st.keep(0)  # stage 0 is the parent's adapter: the first stage continues it
        adapter = Path(run_dir) / ADAPTER if run_dir is not None else None
        if adapter is not None and not adapter.exists():
            staging = adapter.with_name(ADAPTER + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(config["from_adapter"], staging)
            staging.replace(adapter)
    return Lineage(parent, adapter, plan, where, decisions)
