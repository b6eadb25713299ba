"""`curriculum compare`: does the curriculum pay off on *your* graph? Policies side by side, several seeds.

Each (policy, seed) is one ordinary run of the flow in one warehouse, kept with its adapters and report, so a
second call with more seeds adds to the runs already there instead of training them again (runs made by the same
code only: after an upgrade or an edit of the product they are trained again, the old ones kept). The first policy is
the one under test; `flat` is the fair plain fine-tune: every node's data in one stage, one cosine schedule, for
exactly the optimizer steps the first policy's run of the same seed spent (so the two runs have the same compute).
Every figure is read from a run's end state (its final sweep: every node's verdict items — its exam items where the
node is split — on the adapter it ends with) and given with its n and a 95 % t interval over seeds; differences are
paired by seed (same items, same seed), each with its n (seeds × exam items), p, the smallest difference it could have
detected (curriculum.stats.power: paired t, 80 % power, the data's own spread) and, where its interval straddles 0, whether
that is `level` or `underpowered`, and whether to add seeds or items.
"""

from __future__ import annotations

import hashlib
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scipy import stats

from curriculum.runs.inputs import input_files
from flows.codeversion import fingerprint
from curriculum.stats.collapse import one_answer, one_answer_lines
from curriculum.stats.power import GATES_MATTER, MATTERS, describe, n_text, paired_power, within_seed
from curriculum.loading.validate import LoadedCurriculum, load_curriculum
from warehouse.db import Warehouse
from warehouse.records import end_state, get_run, policy_summary, run_code, run_list

FIGURES = ("gates_held", "final_score", "bwt", "drift", "total_steps")


def _item_score(x: Any) -> float:
    """An item's score, whether the end state gives it bare or as a record with a `score`."""
    return float(x["score"] if isinstance(x, dict) else x[-1] if isinstance(x, (list, tuple)) else x)


def verdict_items(end: dict[str, dict[str, Any]], targets: list[str]) -> dict[str, Any]:
    """What stands behind a run's final score: how many items (each node's `n`; `n_items` in warehouses written
    before the exam split), what kind ('exam items' where every node is split, else said), and each node's item
    scores in their stable order where the end state has them (the add-items advice needs them; None otherwise)."""
    nodes = [end[t] for t in targets if t in end]
    counts = [e.get("n", e.get("n_items")) for e in nodes]
    splits = [e.get("split") for e in nodes]
    exam = sum(1 for x in splits if x == "exam")
    if not nodes or None in splits:
        label = "items"
    elif exam == len(nodes):
        label = "exam items"
    elif exam == 0:
        label = "items (every node unsplit)"
    else:
        label = f"items (exam on {exam} of {len(nodes)} nodes, the rest unsplit or never examined)"
    n_items = sum(int(c) for c in counts if c is not None) if nodes and None not in counts else None
    scored = {t: end[t].get("item_scores") or [] for t in targets if t in end}
    return {"n_items": n_items, "items_label": label,
            "item_scores": ({t: [_item_score(x) for x in v] for t, v in scored.items()}
                            if scored and all(scored.values()) else None)}


def summarise(wh: Warehouse, run_id: str, targets: list[str]) -> dict[str, Any]:
    """One run's figures, from its end state and its recorded statuses."""
    s = policy_summary(wh, run_id)
    end = end_state(wh, run_id)
    held = [n for n in targets if n in end and end[n]["score"] >= end[n]["gate"]]
    steps_to_all = tokens_to_all = None
    if len(held) == len(targets):  # every gate holds at the end: when did the policy first hold them all?
        first = next((stage for stage, mastered in s["mastered_after"] if set(targets) <= set(mastered)), None)
        if first is not None:
            steps_to_all = sum(steps for stage, steps, _ in s["per_stage"] if stage <= first)
            tokens_to_all = sum(tokens for stage, _, tokens in s["per_stage"] if stage <= first)
    scores = [end[n]["score"] for n in targets if n in end]
    return {
        "gates_held": len(held), "targets": len(targets), "final_score": sum(scores) / len(scores) if scores else None,
        "bwt": s["bwt"], "drift": s["drift"], "steps_to_all": steps_to_all, "tokens_to_all": tokens_to_all,
        "total_steps": s["steps"], "total_tokens": s["tokens"], "stages": s["stages"], "probe_s": s["probe_s"],
        "verdict_s": s["verdict_s"],
        "train_s": s["train_s"], "end": {n: round(end[n]["score"], 4) for n in targets if n in end},
        "code": run_code(run) if (run := get_run(wh, run_id)) else None,
        "one_answer": one_answer(end, targets), **verdict_items(end, targets),
    }


def mean_ci(values: list[float | None]) -> dict[str, Any]:
    """Mean and 95 % t interval of the values given (n says how many; None values are left out)."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return {"mean": None, "ci": None, "n": 0}
    mean = sum(xs) / len(xs)
    if len(xs) < 2 or max(xs) == min(xs):
        return {"mean": mean, "ci": [mean, mean] if len(xs) >= 2 else None, "n": len(xs)}
    low, high = stats.t.interval(0.95, len(xs) - 1, loc=mean, scale=stats.sem(xs))
    return {"mean": mean, "ci": [float(low), float(high)], "n": len(xs)}


def fmt(agg: dict[str, Any], digits: int = 3) -> str:
    """mean [low, high] (n), as the tables print it."""
    if agg["mean"] is None:
        return "—"
    text = f"{agg['mean']:.{digits}f}"
    if agg["ci"]:
        text += f" [{agg['ci'][0]:.{digits}f}, {agg['ci'][1]:.{digits}f}]"
    return text


def _item_rows(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> tuple[list[list[float]], list[float]] | None:
    """Each seed's per-item differences (A − B) over every gated node, and each item's weight in the final score
    (a mean of node means: 1 / (nodes × the node's items)). None unless every run of every pair has item scores
    for the same nodes and the same number of items on each (the same exam)."""
    if not pairs or any(not a.get("item_scores") or not b.get("item_scores") for a, b in pairs):
        return None
    layout = [(node, len(v)) for node, v in pairs[0][0]["item_scores"].items()]
    rows = []
    for a, b in pairs:
        for run in (a, b):
            if [(node, len(v)) for node, v in run["item_scores"].items()] != layout:
                return None
        rows.append([x - y for node, _ in layout for x, y in zip(a["item_scores"][node], b["item_scores"][node])])
    weights = [1.0 / (len(layout) * m) for _, m in layout for _ in range(m)]
    return rows, weights


def paired_figure(pairs: list[tuple[dict[str, Any], dict[str, Any]]], figure: str,
                  matters: float = MATTERS) -> dict[str, Any]:
    """One figure, first run minus second, pair by pair: mean [interval], each difference, and for the final score
    (`matters` score points) and gates held (one gate) its power said out loud (`power`: curriculum.stats.power's
    figures; `said`: the line the tables print)."""
    diffs = [None if a.get(figure) is None or b.get(figure) is None else a[figure] - b[figure] for a, b in pairs]
    out: dict[str, Any] = {**mean_ci(diffs), "each": [None if d is None else round(d, 4) for d in diffs]}
    if figure == "final_score":
        counts = [r.get("n_items") for r in (a for a, _ in pairs)]
        n_items = min(counts) if counts and None not in counts else None  # type: ignore[type-var]
        items = _item_rows(pairs) if None not in diffs else None
        pp = paired_power(diffs, n_items=n_items, item_diffs=items[0] if items else None,
                          weights=items[1] if items else None, matters=matters)
        label = pairs[0][0].get("items_label", "items") if pairs else "items"
        out |= {"power": pp.as_dict(), "said": describe(pp, items=label), "items": label}
        if len(pairs) == 1 and items:  # no interval over seeds: say at least what the exam tells apart in this one
            (a, b), = pairs
            within = within_seed([[x - y for x, y in zip(a["item_scores"][node], scores)]
                                  for node, scores in b["item_scores"].items()], matters=matters)
            out |= {"within_seed": within.as_dict(), "within_said": f"{fmt(within.as_dict())}, "
                    + describe(within, items=label)}
    elif figure == "gates_held":
        pp = paired_power(diffs, matters=GATES_MATTER)
        out |= {"power": pp.as_dict(), "said": describe(pp, digits=2, unit=" gates", matters_text=f"{GATES_MATTER:g} gate")}
    return out


@dataclass
class Comparison:
    """Every run's figures by policy (seed order), and the paired differences of the first policy to each other."""

    graph: str
    profile: str | None
    policies: list[str]
    seeds: list[int]
    targets: list[str]
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    matters: float = MATTERS  # the score difference that matters, for level vs underpowered (curriculum.stats.power)

    def table(self) -> dict[str, dict[str, Any]]:
        return {p: {f: mean_ci([r[f] for r in self.rows[p]]) for f in FIGURES} for p in self.policies}

    def paired(self) -> dict[str, dict[str, Any]]:
        """First policy minus each other one, seed by seed; the final score and gates held with their power."""
        first, out = self.policies[0], {}
        for other in self.policies[1:]:
            theirs = {r["seed"]: r for r in self.rows[other]}
            pairs = [(a, theirs[a["seed"]]) for a in self.rows[first] if a["seed"] in theirs]
            out[other] = {f: paired_figure(pairs, f, self.matters) for f in ("gates_held", "final_score", "drift")}
        return out

    def as_json(self) -> dict[str, Any]:
        return {"graph": self.graph, "profile": self.profile, "policies": self.policies, "seeds": self.seeds,
                "targets": len(self.targets), "matters": self.matters, "table": self.table(), "paired": self.paired(),
                "runs": self.rows}


def flat_budget(steps: int) -> dict[str, Any]:
    """The plain fine-tune at a given compute: every node's data, exactly `steps` optimizer steps in one round (one
    cosine schedule, no early stop)."""
    return {"max_steps": max(1, steps), "round_steps": max(1, steps), "max_epochs": 10**6, "patience": 10**6}


def inputs_tag(loaded: LoadedCurriculum) -> str:
    """The graph's name and 8 hex digits of its YAML and every file it reads: another graph, or an edit of
    this one, names other runs instead of reusing the old ones."""
    digest = hashlib.sha256("".join([loaded.sha256, *(h for _, h, _ in input_files(loaded))]).encode()).hexdigest()
    return f"{loaded.path.stem}-{digest[:8]}"


def run_id_for(tag: str, policy: str, seed: int, profile: str | None, max_steps: int | None) -> str:
    """Runs are named for what they are, so a later call with more seeds finds the ones already made: the inputs,
    the code that made them (6 hex digits of its fingerprint: after an upgrade or an edit of the product, a
    comparison trains its runs again instead of pairing old runs with new ones), policy, profile, cap and seed."""
    return "-".join(["cmp", tag, fingerprint()[:6], policy, *([profile] if profile else []),
                     *([f"cap{max_steps}"] if max_steps else []), f"s{seed}"])


def other_code_runs(wh: Warehouse, tag: str, ids: list[str]) -> list[str]:
    """Runs of this comparison (same inputs, policy, profile, cap and seed) made by other code, finished or not, ids
    from before the code was part of them included: kept in the warehouse, never reused or resumed, and named with
    their status so that training them again is no surprise."""
    prefix, mine = f"cmp-{tag}-", fingerprint()[:6]
    wanted = {i.removeprefix(prefix).partition("-")[2] for i in ids}  # policy[-profile][-capN]-sSEED
    out = []
    for r in run_list(wh):
        tail = r["run_id"].removeprefix(prefix)
        code, _, rest = tail.partition("-")
        if r["run_id"].startswith(prefix) and (tail in wanted or (code != mine and rest in wanted)):
            out.append(f"{r['run_id']} ({r['status']})")
    return sorted(out)


def compare(graph: str, policies: list[str], seeds: list[int], *, profile: str | None = None,
            max_steps: int | None = None, warehouse: str | None = None, runs_dir: str = "runs",
            log=print, matters: float = MATTERS) -> Comparison:
    """Run what is missing, then read every run's figures. `flat` runs at the first policy's steps, same seed.
    `matters`: the final-score difference that matters, which tells `level` from `underpowered`."""
    from flows.curriculum_flow import curriculum

    loaded = load_curriculum(graph, profile)
    targets = [n for n, node in loaded.spec.nodes.items() if node.entered_by is None and node.probes]
    tag = inputs_tag(loaded)
    wh = Warehouse(warehouse)
    cmp = Comparison(graph, profile, policies, seeds, targets, {p: [] for p in policies}, matters)
    capped = {"max_steps": max_steps} if max_steps else None
    order = [p for p in policies if p != "flat"] + (["flat"] if "flat" in policies else [])
    if stale := other_code_runs(wh, tag, [run_id_for(tag, p, s, profile, max_steps) for s in seeds for p in order]):
        log(f"{len(stale)} run(s) of this comparison were made by other code (an earlier version or an edit of the "
            f"product): kept, not reused or resumed: {', '.join(stale)}")
    for seed in seeds:
        for policy in order:
            run_id = run_id_for(tag, policy, seed, profile, max_steps)
            run = get_run(wh, run_id)
            if run is None or run["status"] != "completed":
                overrides = capped
                if policy == "flat" and policies[0] != "flat":
                    overrides = flat_budget(int(cmp.rows[policies[0]][-1]["total_steps"]))
                log(f"{run_id}: {'resuming' if run else 'running'} {policy}, seed {seed}")
                curriculum(graph=graph, policy=policy, seed=seed, warehouse=str(wh.path), runs_dir=runs_dir,
                           profile=profile, train_overrides=overrides, resume=run_id if run else None,
                           run_id=None if run else run_id)
            cmp.rows[policy].append({"run_id": run_id, "seed": seed, **summarise(wh, run_id, targets)})
    return cmp


def comparison_lines(cmp: Comparison) -> list[str]:
    """The terminal's table: one line a policy, then the paired differences (seed by seed in parentheses)."""
    table, paired = cmp.table(), cmp.paired()
    width = max(len(p) for p in cmp.policies) + 2
    lines = [f"{len(cmp.targets)} gated nodes, seeds {', '.join(map(str, cmp.seeds))}: mean [95 % t interval] over seeds",
             f"{'policy':{width}s}{'gates held':>22s}{'final score':>24s}{'bwt':>26s}{'drift':>26s}{'steps':>16s}"]
    for p in cmp.policies:
        row = table[p]
        lines.append(f"{p:{width}s}{fmt(row['gates_held'], 2):>22s}{fmt(row['final_score']):>24s}{fmt(row['bwt']):>26s}"
                     f"{fmt(row['drift']):>26s}{fmt(row['total_steps'], 0):>16s}")
    for other, d in paired.items():
        lines.append(f"{cmp.policies[0]} − {other}, paired by seed: gates {fmt(d['gates_held'], 2)}, final score "
                     f"{fmt(d['final_score'])} ({', '.join(map(str, d['final_score']['each']))})")
        lines.append(f"  final score: {d['final_score']['said']}")
        if "within_said" in d["final_score"]:
            lines.append(f"  final score within the one seed: {d['final_score']['within_said']}")
        lines.append(f"  gates held: {d['gates_held']['said']}")
    return lines + [f"warning: {line}" for line in one_answer_lines(cmp.rows)]


def comparison_html(cmp: Comparison) -> str:
    """One self-contained page: the table with intervals, the paired differences, and each run's end scores."""
    def cell(text: Any) -> str:
        return f"<td>{html.escape(str(text))}</td>"

    table, paired = cmp.table(), cmp.paired()
    head = "".join(f"<th>{h}</th>" for h in ("policy", "gates held", "final score", "bwt", "drift", "steps", "n"))
    body = "".join("<tr>" + cell(p) + "".join(cell(fmt(table[p][f], 2 if f == "gates_held" else 3))
                                               for f in FIGURES[:-1]) + cell(fmt(table[p]["total_steps"], 0))
                   + cell(table[p]["final_score"]["n"]) + "</tr>" for p in cmp.policies)
    pair = "".join("<tr>" + cell(f"{cmp.policies[0]} − {o}") + "".join(
        cell(f"{fmt(d[f], 2 if f == 'gates_held' else 3)} ({', '.join(map(str, d[f]['each']))})")
        for f in ("gates_held", "final_score", "drift")) + "</tr>" for o, d in paired.items())
    power = "".join("<tr>" + cell(f"{cmp.policies[0]} − {o}") + cell(name) + cell(fmt(d[f], 2 if f == "gates_held" else 3))
                    + "".join(cell(x) for x in _power_cells(d[f], f)) + cell(d[f]["said"]) + "</tr>"
                    for o, d in paired.items() for f, name in (("final_score", "final score"), ("gates_held", "gates held")))
    power += "".join("<tr>" + cell(f"{cmp.policies[0]} − {o}") + cell("final score, within the one seed (items paired)")
                     + cell(fmt(d["final_score"]["within_seed"]))
                     + "".join(cell(x) for x in _power_cells({"power": d["final_score"]["within_seed"],
                                                               "items": d["final_score"]["items"]}, "final_score"))
                     + cell(d["final_score"]["within_said"]) + "</tr>"
                     for o, d in paired.items() if "within_seed" in d["final_score"])
    collapsed = "".join(f"<p class='warn'>{html.escape(line)}</p>" for line in one_answer_lines(cmp.rows))
    runs = "".join("<tr>" + cell(r["run_id"]) + cell(p) + cell(r["seed"]) + cell(json.dumps(r["end"])) + "</tr>"
                   for p in cmp.policies for r in cmp.rows[p])
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Comparison</title><style>"
            "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px}table{border-collapse:collapse;"
            "font-size:12px}td,th{border:1px solid #ddd;padding:3px 6px}th{background:#f5f5f5}.warn{color:#a40}</style></head><body>"
            f"<h1>{html.escape(cmp.graph)}{' / ' + html.escape(cmp.profile) if cmp.profile else ''}: "
            f"{', '.join(map(html.escape, cmp.policies))}</h1>"
            f"<p>{len(cmp.targets)} gated nodes, seeds {', '.join(map(str, cmp.seeds))}; mean [95 % t interval] over "
            "seeds, read from each run's final sweep. <code>flat</code>: all the data in one stage for the first "
            "policy's steps of the same seed.</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            "<h2>Paired by seed</h2><table><thead><tr><th></th><th>gates</th><th>final score</th><th>drift</th></tr>"
            f"</thead><tbody>{pair}</tbody></table>"
            "<h2>What each difference could detect</h2>"
            f"<p>Detectable: the smallest true difference a paired t test over these seeds finds with 80 % power, "
            f"from the spread the seeds showed. An interval that straddles 0 is <em>level</em> when that is at most "
            f"the difference that matters ({cmp.matters:g} score points; one gate), else <em>underpowered</em>: add "
            "seeds, or items where the items' own noise is most of the spread.</p>"
            "<table><thead><tr><th></th><th>figure</th><th>difference [95 %]</th><th>n</th><th>p</th>"
            "<th>detectable (80 %)</th><th>verdict</th><th>advice</th><th>said</th></tr>"
            f"</thead><tbody>{power}</tbody></table>{collapsed}"
            "<h2>Runs (end scores per node)</h2><table><thead><tr><th>run</th><th>policy</th><th>seed</th><th>end</th>"
            f"</tr></thead><tbody>{runs}</tbody></table></body></html>\n")


def _power_cells(d: dict[str, Any], figure: str) -> list[str]:
    """n, p, detectable, verdict, advice: the HTML's power columns, from one paired figure."""
    pp = d["power"]
    items = None if figure == "gates_held" else pp["n_items"]
    return [n_text(pp["n_seeds"], items, d.get("items", "items")),
            "—" if pp["p"] is None else f"{pp['p']:.2g}",
            "—" if pp["mde"] is None else f"±{pp['mde']:.{2 if figure == 'gates_held' else 3}f}",
            pp["verdict"], pp["advice"]]


def write_comparison(cmp: Comparison, runs_dir: str | Path) -> Path:
    """The HTML beside the runs' own reports (written whole or not at all)."""
    name = "compare-" + "-".join([Path(cmp.graph).stem, *([cmp.profile] if cmp.profile else []), *cmp.policies])
    out = Path(runs_dir) / f"{name}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(out.name + ".partial")
    staging.write_text(comparison_html(cmp), encoding="utf-8")
    staging.replace(out)
    return out
