"""A family's verdict: one policy against a baseline over several curricula, each curriculum one pair.

`bench/curriculum.py` pairs a policy with the plain fine-tune seed by seed on one curriculum. Five training seeds of
every arm on one curriculum cost days of a 2-core CPU; five curricula of a generated family (`curriculum generate
FAMILY DIR --seed K`), one seed each, cost the same as five seeds and answer the question a user of the family asks:
does the policy beat the plain fine-tune on curricula like these? Each difference then carries both what a new
training seed and what a new curriculum would move. This reads the benchmarks' kept rows (`--out` folders, one per
curriculum), pairs each folder's adaptive arm with its baseline at the same seed, and reads the differences with
the same `paired_power` the benchmark applies across seeds: mean, 95 % t interval over the curricula, the smallest
difference they could detect (80 % power), the verdict at `--matters`, and each curriculum's own within-seed
interval beside it. It trains nothing.

Run: .venv/bin/python bench/family.py runs/gated-layers-s0 runs/gated-layers-s1 … [--baseline flat-budget] [--seed 0]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/*.py would shadow the project's packages when run as scripts
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
from typing import Any

from curriculum.stats.power import MATTERS
from curriculum.stats.collapse import one_answer_lines
from flows.compare import fmt, paired_figure


def pair_of(folder: Path, baseline: str, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The folder's adaptive run and its baseline at one seed, from the rows the benchmark kept."""
    rows = {r["run_id"]: r for r in map(json.loads, (folder / "rows.jsonl").read_text().splitlines())}
    missing = [k for k in (f"adaptive-s{seed}", f"{baseline}-s{seed}") if k not in rows]
    if missing:
        raise SystemExit(f"{folder / 'rows.jsonl'}: no finished run {', '.join(missing)}")
    return rows[f"adaptive-s{seed}"], rows[f"{baseline}-s{seed}"]


def unitemised(row: dict[str, Any]) -> dict[str, Any]:
    """A row without its per-item scores."""
    return {k: v for k, v in row.items() if k != "item_scores"}


def across(said: str) -> str:
    """The power line as the benchmark prints it, in curricula: here each curriculum is what a seed is there."""
    return said.replace("seeds", "curricula").replace("every seed", "every curriculum").replace("one seed", "one curriculum")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path, help="bench/curriculum.py --out folders, one curriculum each")
    ap.add_argument("--baseline", default="flat-budget", help="the arm each adaptive run is paired with")
    ap.add_argument("--seed", type=int, default=0, help="the training seed read in every folder")
    ap.add_argument("--matters", type=float, default=MATTERS, help="the final-score difference that matters")
    args = ap.parse_args()
    pairs = [pair_of(f, args.baseline, args.seed) for f in args.folders]

    print(f"adaptive − {args.baseline}, final score on exam items, each curriculum its own pair (seed {args.seed}):")
    each = []
    for folder, (a, b) in zip(args.folders, pairs):
        one = paired_figure([(a, b)], "final_score", args.matters)
        within = one.get("within_seed")
        each.append({"folder": str(folder), "adaptive": a["final_score"], "baseline": b["final_score"],
                     "steps": a["total_steps"], "difference": one["mean"], "within_seed": within,
                     "code": sorted({a.get("code") or "unrecorded", b.get("code") or "unrecorded"})})
        print(f"  {str(folder):32s} {a['total_steps']:>5.0f} steps  {a['final_score']:.3f} − {b['final_score']:.3f}"
              f" = {one['mean']:+.3f}   within the seed {fmt(within) if within else '—'}"
              f" ({within['verdict'] if within else 'no items'})")
    # each curriculum has its own exam: item k of one is not item k of another, so the two-way item model (which
    # splits a difference's variance into items and seeds) has nothing to read here; the curricula's spread alone
    pooled = paired_figure([(unitemised(a), unitemised(b)) for a, b in pairs], "final_score", args.matters)
    gates = paired_figure(pairs, "gates_held", args.matters)
    print(f"over the {len(pairs)} curricula: {fmt(pooled)}; {across(pooled['said'])}")
    print(f"gates held, over the {len(pairs)} curricula: {fmt(gates, 2)}; {across(gates['said'])}")
    codes = sorted({c for e in each for c in e["code"]})
    if len(codes) > 1:
        print(f"note: these rows were made by {len(codes)} versions of the product's code ({', '.join(codes)})")
    for folder, (a, b) in zip(args.folders, pairs):  # a difference against a collapsed arm is not a fair one
        for line in one_answer_lines({"adaptive": [a], args.baseline: [b]}):
            print(f"warning: {folder}: {line}")
    if unchecked := [str(f) for f, (a, b) in zip(args.folders, pairs) if "one_answer" not in a or "one_answer" not in b]:
        print(f"note: {len(unchecked)} folder(s) hold rows written before runs were checked for one answer to "
              f"everything (a collapsed arm); their warehouses can still be read for it: {', '.join(unchecked)}")
    print(json.dumps({"baseline": args.baseline, "seed": args.seed, "matters": args.matters, "curricula": each,
                      "score_minus_baseline": pooled["mean"], "score_minus_baseline_ci": pooled["ci"],
                      "power": pooled["power"], "gates_minus_baseline": gates["mean"],
                      "gates_minus_baseline_ci": gates["ci"], "code": codes}, default=float))


if __name__ == "__main__":
    main()
