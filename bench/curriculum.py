"""Does the curriculum pay off? The YAML's adaptive policy against a plain fine-tune, on any graph, several seeds.

Per seed, on the same graph, items and seed:
  adaptive     the YAML's policy (fixed before the run), stages sized by mastery
  flat-rounds  every node's data in one stage, probed on every item after each round (one epoch by default)
               until every gate holds or it has spent --flat-cap x the adaptive run's optimizer steps
  flat-budget  every node's data, exactly the adaptive run's optimizer steps, one cosine schedule
  fixed        topological order, no gates, stages sized by the same checks
  random       ready nodes in random order, with the adaptive policy's gates and rehearsal

Every figure is read from the end state — the final sweep on the run's final accepted adapter, each node
scored on its exam items where it is split (else on all its items) — and from the policy's recorded statuses:
gates held, mean score over the gated nodes, BWT (forgetting view: on check items, what the run saw), drift of the adapter it ends with (where the
curriculum has `drift:`), optimizer steps and tokens until every gate was held (and still held at the end), wall
time and probe time (with `check_s`: the in-run checks alone, the final sweep apart). Figures are mean ± 95 % t interval over the seeds. Each paired difference of the final
score and of gates held is printed with its n (seeds × exam items), p, the smallest difference it could have
detected (paired t, 80 % power, the data's own spread: curriculum.stats.power) and, where its interval straddles 0,
whether that is level or underpowered and whether to add seeds or items (--matters: the score difference that
matters, default 0.05).

Run: .venv/bin/python bench/curriculum.py --graph graphs/archipelago.yaml --seeds 3
     .venv/bin/python bench/curriculum.py --graph graphs/hyperwords.yaml --profile demo --seeds 3
     (--max-steps 20: the demo's cap on every node; --baselines flat-budget: the fair plain fine-tune only)
     --set replay_each=4 --set consolidate=true: train settings over the YAML's for the adaptive arm only;
     --pair-with DIR: that arm against another benchmark's adaptive arm (same graph, same seeds), paired by seed
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/*.py would shadow the project's packages when run as scripts
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import math
import tempfile
import time
from typing import Any

from curriculum.models.bases import stay_offline

stay_offline()

import yaml

import flows  # noqa: F401  (Prefect defaults)
from curriculum.loading.validate import load_curriculum
from flows.curriculum_flow import curriculum
from prefect import flow
from warehouse.db import Warehouse
from curriculum.stats.power import MATTERS
from curriculum.stats.collapse import one_answer_lines
from flows.compare import flat_budget, mean_ci, paired_figure
from flows.compare import fmt as interval
from flows.compare import summarise as run_figures
from warehouse.records import get_run

ROOT = Path(__file__).resolve().parent.parent
BASELINES = ["flat-rounds", "flat-budget", "fixed", "random", "gated"]
FIGURES = ["gates_held", "final_score", "bwt", "drift", "steps_to_all", "tokens_to_all", "total_steps", "wall_s", "probe_s", "train_s"]


@flow
def _warm_up() -> None:
    """Start Prefect's ephemeral server before any timing."""


def summarise(wh: Warehouse, run_id: str, targets: list[str], wall: float) -> dict[str, Any]:
    """One run's figures (flows.compare's, as `curriculum compare` reads them), with its wall time."""
    row = run_figures(wh, run_id, targets)
    # the in-run checks (baseline, stage probes, in-stage checks: what decisions read) apart from the final sweep
    check_s = row["probe_s"] - row["verdict_s"]
    return {**row, "wall_s": wall, "overhead_s": wall - row["train_s"] - row["probe_s"], "check_s": check_s,
            "check_fraction": check_s / wall if wall else None}


def fmt(agg: dict[str, Any], digits: int = 3) -> str:
    """flows.compare's mean [interval], with how many seeds gave a value when some did not ("never": none)."""
    if agg["mean"] is None:
        return "never"
    return interval(agg, digits) + ("" if agg["n"] == agg.get("of", agg["n"]) else f" ({agg['n']}/{agg['of']})")


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b not in (None, 0) else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graph", default=str(ROOT / "graphs" / "hyperwords.yaml"))
    ap.add_argument("--profile", default=None, help="a profile of the YAML (e.g. demo); default the whole graph")
    ap.add_argument("--policy", default=None, help="the adaptive policy (default: the YAML's), e.g. mix")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--baselines", default=",".join(BASELINES), help="comma-separated subset of " + ", ".join(BASELINES))
    ap.add_argument("--flat-round", type=int, default=None, help="flat-rounds' steps between probes (default one epoch)")
    ap.add_argument("--flat-cap", type=float, default=3.0, help="flat-rounds' budget, in adaptive runs' steps")
    ap.add_argument("--max-steps", type=int, default=None,
                    help="every node's step budget over the YAML's, as `curriculum run --max-steps` (make demo uses 20)")
    ap.add_argument("--out", default=None, help="keep the warehouse and adapters here (default a temporary folder)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a train setting over the YAML's for the adaptive arm (repeatable), e.g. freeze_lower=0.5")
    ap.add_argument("--pair-with", default=None, metavar="DIR",
                    help="another benchmark's --out: its adaptive runs, paired by seed against this one's")
    ap.add_argument("--summary-only", action="store_true", help="train nothing: the table of the runs --out already holds")
    ap.add_argument("--matters", type=float, default=MATTERS,
                    help="the final-score difference that matters (score points): an interval straddling 0 is level "
                         "when the detectable difference is at most this, else underpowered")
    args = ap.parse_args()
    settings = {k: yaml.safe_load(v) for k, _, v in (kv.partition("=") for kv in args.set)}
    if bad := [kv for kv in args.set if "=" not in kv]:
        ap.error(f"--set {bad[0]}: expected KEY=VALUE")
    baselines = [b for b in args.baselines.split(",") if b]
    loaded = load_curriculum(args.graph, args.profile)
    targets = [n for n, node in loaded.spec.nodes.items() if node.entered_by is None and node.probes]
    adaptive = args.policy or loaded.spec.policy
    _warm_up()
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench-curriculum-"))
    work.mkdir(parents=True, exist_ok=True)
    db, runs = work / "bench.duckdb", work / "runs"
    per_seed: dict[str, list[dict[str, Any]]] = {p: [] for p in ["adaptive", *baselines]}

    done_file = work / "rows.jsonl"  # each finished run's figures: a killed benchmark picks up where it stopped
    done = {r["run_id"]: r for r in map(json.loads, done_file.read_text().splitlines())} if done_file.exists() else {}

    def run(name: str, seed: int, extra: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any] | None:
        run_id = f"{name}-s{seed}"
        if run_id in done or args.summary_only:
            return done.get(run_id)
        t0 = time.perf_counter()
        killed = db.exists() and get_run(Warehouse(db), run_id) is not None  # a benchmark killed mid-run: continue it
        curriculum(graph=args.graph, seed=seed, warehouse=str(db), runs_dir=str(runs),
                   **({"resume": run_id} if killed else {"run_id": run_id}), profile=args.profile, **kw)
        row = {"run_id": run_id, **summarise(Warehouse(db), run_id, targets, time.perf_counter() - t0), **(extra or {})}
        if killed:  # its wall time would count the resumed part only, its train and probe time the whole run
            row |= {"resumed": True, "wall_s": None, "overhead_s": None, "check_fraction": None}
        with done_file.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(name, seed, json.dumps({k: v for k, v in row.items() if k not in ("end", "item_scores")}), flush=True)
        return row

    for seed in range(args.first_seed, args.first_seed + args.seeds):
        capped = {"train_overrides": {"max_steps": args.max_steps}} if args.max_steps else {}
        a = run("adaptive", seed, {"settings": settings} if settings else None, policy=adaptive,
                train_overrides={**capped.get("train_overrides", {}), **settings} or None)
        if a is None:
            continue
        per_seed["adaptive"].append(a)
        budget = max(1, int(a["total_steps"]))
        for name in baselines:
            if name == "flat-rounds":
                cap = max(1, math.ceil(args.flat_cap * budget))
                every = {"round_steps": args.flat_round} if args.flat_round else {"round_steps": 1}
                row = run(name, seed, {"budget": cap}, policy="flat", train_overrides={
                    "epochs": 1, **every, "max_steps": cap, "max_epochs": 10**6, "patience": 10**6})
            elif name == "flat-budget":
                row = run(name, seed, policy="flat", train_overrides=flat_budget(budget))
            else:
                row = run(name, seed, policy=name, **capped)
            if row is not None:
                per_seed[name].append(row)

    table = {}
    for name, rows in per_seed.items():
        table[name] = {f: {**mean_ci([r[f] for r in rows]), "of": len(rows)} for f in FIGURES}
        table[name]["seeds"] = len(rows)

    def pairs(b: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """The adaptive arm's runs and arm b's, seed by seed."""
        by_seed = {r["run_id"].rsplit("-s", 1)[1]: r for r in per_seed.get(b, [])}
        return [(a, by_seed[s]) for a in per_seed["adaptive"] if (s := a["run_id"].rsplit("-s", 1)[1]) in by_seed]

    def paired(f, b: str, key: str, censor: bool = False) -> dict[str, Any]:
        out = []
        for a, r in pairs(b):
            other = r[key] if r[key] is not None or not censor else r.get("budget", r["total_steps"])
            out.append(f(a[key], other))
        return {**mean_ci(out), "of": len(out)}

    said: list[str] = []  # each paired difference with its power, printed before the summary

    def difference(b: str, key: str, fig: str, name: str | None = None, label: str | None = None) -> dict[str, Any]:
        """Adaptive minus arm b on one figure, its power in the summary (the final score and gates held) and in
        the lines printed: `adaptive_{key}_minus_{name}` (mean), `_ci`, `_n`, and `_power`."""
        name = name or b.replace("-", "_")
        d = paired_figure(pairs(b), fig, args.matters)
        out = {f"adaptive_{key}_minus_{name}": d["mean"], f"adaptive_{key}_minus_{name}_ci": d["ci"],
               f"adaptive_{key}_minus_{name}_n": d["n"]}
        if "power" in d:
            out[f"adaptive_{key}_minus_{name}_power"] = d["power"]
            said.append(f"adaptive − {label or b}, {fig.replace('_', ' ')}: {interval(d, 2 if fig == 'gates_held' else 3)}; "
                        + d["said"])
        if "within_seed" in d:  # one seed: what the exam tells apart within it, labelled as such
            out[f"adaptive_{key}_minus_{name}_within_seed"] = d["within_seed"]
            said.append(f"adaptive − {label or b}, {fig.replace('_', ' ')} within the one seed: {d['within_said']}")
        return out

    summary = {
        "graph": args.graph, "profile": args.profile, "adaptive_policy": adaptive, "seeds": args.seeds,
        "max_steps": args.max_steps, "settings": settings, "matters": args.matters,
        "targets": len(targets), "policies": table,
    }
    if "flat-rounds" in per_seed:
        steps = paired(ratio, "flat-rounds", "steps_to_all", censor=True)
        summary |= {
            "adaptive_steps_over_flat": steps["mean"], "adaptive_steps_over_flat_ci": steps["ci"],
            "adaptive_steps_over_flat_n": steps["n"],
        }
        for key, fig in (("gates", "gates_held"), ("score", "final_score"), ("bwt", "bwt")):
            summary |= difference("flat-rounds", key, fig, "flat")
    if "flat-budget" in per_seed:
        for key, fig in (("gates", "gates_held"), ("score", "final_score"), ("drift", "drift")):
            summary |= difference("flat-budget", key, fig)
    if "fixed" in per_seed:
        steps = paired(ratio, "fixed", "steps_to_all")
        summary |= {"adaptive_steps_over_fixed": steps["mean"], "adaptive_steps_over_fixed_ci": steps["ci"]}
    paired_code: set[str] = set()
    if args.pair_with:
        other = [json.loads(line) for line in (Path(args.pair_with) / "rows.jsonl").read_text().splitlines()]
        per_seed["paired"] = [r for r in other if r["run_id"].startswith("adaptive-s")]
        for key, fig in (("gates", "gates_held"), ("score", "final_score"), ("bwt", "bwt"), ("steps", "total_steps")):
            summary |= difference("paired", key, fig, label=f"{args.pair_with}'s adaptive")
        paired_code = {r.get("code") or "unrecorded" for r in per_seed.pop("paired")}
        print(f"against {args.pair_with}'s adaptive arm, paired by seed: "
              + ", ".join(f"{k} {summary[f'adaptive_{k}_minus_paired']:+.3f} {summary[f'adaptive_{k}_minus_paired_ci']}"
                          for k in ("gates", "score", "bwt", "steps") if summary[f"adaptive_{k}_minus_paired"] is not None))
    every_run = [r for rows in per_seed.values() for r in rows if r["overhead_s"] is not None]
    summary["overhead_fraction"] = sum(r["overhead_s"] for r in every_run) / max(sum(r["train_s"] for r in every_run), 1e-9)
    timed = [r for r in every_run if r.get("check_s") is not None and r["wall_s"]]  # rows written before it have none
    summary["check_fraction"] = sum(r["check_s"] for r in timed) / sum(r["wall_s"] for r in timed) if timed else None
    # rows.jsonl keeps finished runs across calls: say when they were made by different code (None: before this)
    summary["code"] = sorted({r.get("code") or "unrecorded" for rows in per_seed.values() for r in rows}
                             | paired_code)
    if len(summary["code"]) > 1:
        print(f"note: these rows were made by {len(summary['code'])} versions of the product's code "
              f"({', '.join(summary['code'])}): a difference between arms may be the code's", flush=True)
    summary["end_scores"] = {name: [r["end"] for r in rows] for name, rows in per_seed.items()}

    print(f"\n{loaded.spec.curriculum}{' / ' + args.profile if args.profile else ''}: {len(targets)} gated nodes, "
          f"{args.seeds} seed(s), adaptive = {adaptive}; mean [95 % t interval]; (k/n): seeds where it held every gate")
    head = f"{'policy':12s} {'gates held':>14s} {'final score':>15s} {'bwt':>15s} {'drift':>15s} {'steps→all':>16s} {'steps':>14s} {'wall s':>12s}"
    print(head)
    for name, t in table.items():
        print(f"{name:12s} {fmt(t['gates_held'], 2):>14s} {fmt(t['final_score']):>15s} {fmt(t['bwt']):>15s} "
              f"{fmt(t['drift']) if t['drift']['n'] else '—':>15s} {fmt(t['steps_to_all'], 0):>16s} {fmt(t['total_steps'], 0):>14s} {fmt(t['wall_s'], 0):>12s}")
    for line in said + [f"warning: {line}" for line in one_answer_lines(per_seed)]:
        print(line)
    print(f"warehouse: {db}")
    print(json.dumps(summary, default=float))


if __name__ == "__main__":
    main()
