"""Does the curriculum pay off? gated, greedy, bandit, flat and fixed on the same graph and seed.

Per policy: optimizer steps and tokens until every gate was passed, final mean probe score,
BWT (mean forgetting), wall time, and orchestration overhead (wall time not spent in
training or probing, over training time). One process, one table, one JSON line.

Profile: by default the bundled graph's `demo` profile (what `make demo` runs);
BENCH_PROFILE=NAME picks another profile of the YAML, BENCH_PROFILE=full the whole graph.
Run: .venv/bin/python bench/curriculum.py
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/*.py would shadow the project's packages when run as scripts
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import json
import os
import tempfile
import time

for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(key, "1")

import flows  # noqa: F401  (Prefect defaults)
from curriculum.validate import load_curriculum
from flows.curriculum_flow import curriculum
from prefect import flow
from warehouse.db import Warehouse
from warehouse.records import policy_summary

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ["gated", "greedy", "bandit", "flat", "fixed"]
GRAPH = ROOT / "graphs" / "hyperwords.yaml"
PROFILE = os.environ.get("BENCH_PROFILE", "demo")  # a profile of the bundled YAML, or 'full'


def targets_of(profile: str | None) -> list[str]:
    """The nodes whose gates count (remedial ones do not)."""
    loaded = load_curriculum(GRAPH, profile)
    return [n for n, node in loaded.spec.nodes.items() if node.entered_by is None]


@flow
def _warm_up() -> None:
    """Start Prefect's ephemeral server before any timing."""


def to_master_all(summary: dict, targets: list[str]) -> tuple[int | None, int | None]:
    """Steps and tokens spent until the last target's gate was passed (None if never)."""
    passed_at: dict[str, int] = {}
    for stage, node in summary["passes"]:
        if node in targets:
            passed_at.setdefault(node, stage)
    if set(passed_at) != set(targets):
        return None, None
    last = max(passed_at.values())
    steps = sum(s for stage, s, _ in summary["per_stage"] if stage <= last)
    tokens = sum(t for stage, _, t in summary["per_stage"] if stage <= last)
    return steps, tokens


def main() -> None:
    _warm_up()
    table = {}
    with tempfile.TemporaryDirectory() as tmp:
        profile = None if PROFILE == "full" else PROFILE
        targets = targets_of(profile)
        db = Path(tmp) / "bench.duckdb"
        for policy in POLICIES:
            t0 = time.perf_counter()
            run_id = curriculum(graph=str(GRAPH), policy=policy, seed=0, warehouse=str(db), runs_dir=str(Path(tmp) / "runs"),
                                run_id=f"bench-{policy}", profile=profile)
            wall = time.perf_counter() - t0
            s = policy_summary(Warehouse(db), run_id)
            steps, tokens = to_master_all(s, targets)
            table[policy] = {
                "steps_to_master_all": steps, "tokens_to_master_all": tokens,
                "total_steps": s["steps"], "total_tokens": s["tokens"], "stages": s["stages"],
                "gates_passed": f"{len(set(s['passed']) & set(targets))}/{len(targets)}",
                "final_score": round(s["final_score"], 4), "bwt": round(s["bwt"], 4), "wall_s": round(wall, 1),
                "overhead_s": round(wall - s["task_s"], 2), "train_s": round(s["train_s"], 1),
            }
            print(policy, json.dumps(table[policy]), flush=True)
    print(f"\n{'policy':8s} {'steps→all':>10s} {'tokens→all':>11s} {'steps':>6s} {'gates':>6s} {'final':>7s} {'bwt':>7s} {'wall s':>7s}")
    for p, r in table.items():
        print(f"{p:8s} {str(r['steps_to_master_all']):>10s} {str(r['tokens_to_master_all']):>11s} {r['total_steps']:6d} "
              f"{r['gates_passed']:>6s} {r['final_score']:7.3f} {r['bwt']:7.3f} {r['wall_s']:7.1f}")
    adaptive = {p: table[p] for p in ("gated", "greedy", "bandit")}

    def steps(r: dict) -> float:
        return r["steps_to_master_all"] if r["steps_to_master_all"] is not None else float("inf")

    best = min(adaptive, key=lambda p: (steps(adaptive[p]), -adaptive[p]["final_score"]))

    def ratio(a: float, b: float) -> float | None:
        return round(a / b, 3) if b not in (0, float("inf")) and a != float("inf") else None

    overhead = sum(r["overhead_s"] for r in table.values()) / sum(r["train_s"] for r in table.values())
    print(json.dumps({
        "profile": PROFILE,
        "policies": table,
        "best_adaptive": best,
        "adaptive_steps_over_flat": ratio(steps(table[best]), steps(table["flat"])),
        "adaptive_steps_over_fixed": ratio(steps(table[best]), steps(table["fixed"])),
        "adaptive_score_minus_flat": round(table[best]["final_score"] - table["flat"]["final_score"], 4),
        "adaptive_bwt_minus_flat": round(table[best]["bwt"] - table["flat"]["bwt"], 4),
        "overhead_fraction": round(overhead, 4),
    }))


if __name__ == "__main__":
    main()
