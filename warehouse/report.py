"""One self-contained HTML report of a run: graph by status, mastery heatmap, score and loss
curves, the decisions with their reasons, and the worst probe answers.

Plots are inline SVG (matplotlib), styles inline: the file opens offline and fetches nothing.
"""

from __future__ import annotations

import html
import io
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import yaml  # noqa: E402

from warehouse.db import Warehouse  # noqa: E402
from warehouse.drift import drift_by_stage  # noqa: E402
from warehouse.records import mastery_table  # noqa: E402

STATUS_COLOURS = {"mastered": "#2e9d5b", "trained": "#7cc08f", "below-gate": "#c9b458", "forgotten": "#f2994a",
                  "failed": "#d64545", "skipped": "#9aa0a6", "locked": "#f2c94c", "waiting": "#bb6bd9", "dormant": "#e8eaed"}


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _rows(wh: Warehouse, sql: str, run_id: str) -> list[dict[str, Any]]:
    cols, rows = wh.query(sql, [run_id])
    return [dict(zip(cols, r)) for r in rows]


def node_status(wh: Warehouse, run_id: str, nodes: dict[str, dict]) -> dict[str, str]:
    """Each node's end state as the policy recorded it (node_status), never re-derived from decisions."""
    recorded = dict(wh.query("SELECT node_id, status FROM final_status WHERE run_id = ?", [run_id])[1])
    return {n: recorded.get(n, "dormant" if body.get("entered_by") == "on_fail" else "locked") for n, body in nodes.items()}


def _graph_svg(nodes: dict[str, dict], status: dict[str, str]) -> str:
    g = nx.DiGraph()
    for n, body in nodes.items():
        g.add_node(n)
        for r in body.get("requires", []):
            g.add_edge(r, n, kind="requires")
        if body.get("on_fail"):
            g.add_edge(n, body["on_fail"], kind="on_fail")
    for depth, layer in enumerate(nx.topological_generations(g)):
        for n in layer:
            g.nodes[n]["depth"] = depth
    pos = nx.multipartite_layout(g, subset_key="depth", align="horizontal", scale=-1)
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(nodes) ** 0.8), 1.6 + 1.2 * (max(nx.get_node_attributes(g, "depth").values()) + 1)))
    solid = [(u, v) for u, v, k in g.edges(data="kind") if k == "requires"]
    dashed = [(u, v) for u, v, k in g.edges(data="kind") if k == "on_fail"]
    nx.draw_networkx_edges(g, pos, edgelist=solid, ax=ax, arrows=True, node_size=900)
    nx.draw_networkx_edges(g, pos, edgelist=dashed, ax=ax, arrows=True, style="dashed", edge_color="#d64545", node_size=900)
    nx.draw_networkx_nodes(g, pos, ax=ax, node_size=900, node_color=[STATUS_COLOURS[status[n]] for n in g])
    nx.draw_networkx_labels(g, pos, ax=ax, font_size=7, labels={n: n.replace(".", ".\n") for n in g})
    ax.set_axis_off()
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=s) for s, c in STATUS_COLOURS.items()]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1, 1), fontsize=7, frameon=False)
    return _svg(fig)


def _heatmap_svg(cells: list[dict[str, Any]]) -> str:
    nodes = sorted({c["node_id"] for c in cells})
    stages = sorted({c["stage"] for c in cells})
    grid = [[float("nan")] * len(stages) for _ in nodes]
    for c in cells:
        grid[nodes.index(c["node_id"])][stages.index(c["stage"])] = c["score"]
    fig, ax = plt.subplots(figsize=(max(5, 0.45 * len(stages) + 3), 0.35 * len(nodes) + 1.2))
    im = ax.imshow(grid, aspect="auto", vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(stages)), [str(s) for s in stages], fontsize=7)
    ax.set_yticks(range(len(nodes)), nodes, fontsize=7)
    ax.set_xlabel("stage (0 = baseline)")
    fig.colorbar(im, ax=ax, label="mean probe score")
    return _svg(fig)


def _curves_svg(series: dict[str, list[tuple[float, float]]], xlabel: str, ylabel: str) -> str:
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for name, points in series.items():
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker="o", markersize=3, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if len(series) <= 12:
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1, 1), frameon=False)
    return _svg(fig)


def _table(rows: list[dict[str, Any]], columns: list[str], css: str = "") -> str:
    def cell(v: Any) -> str:
        return "" if v is None else f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _interval_text(r: dict[str, Any]) -> str:
    bounds = "" if r["drift_low"] is None else f" [{r['drift_low']:+.3f}, {r['drift_high']:+.3f}]"
    return f"{r['drift']:+.3f}{bounds} on {r['drift_n']} prompts"


def _drift_section(wh: Warehouse, run_id: str) -> list[str]:
    """Drift of general ability per stage (with its 95% interval), and the prompts the last kept stage moved most."""
    rows = drift_by_stage(wh, run_id)
    if not rows:
        return []
    fig, ax = plt.subplots(figsize=(7, 2.8))
    ax.axhline(0, color="#9aa0a6", lw=0.8)
    for done, colour in ((True, "#2e9d5b"), (False, "#d64545")):
        pts = [r for r in rows if (r["status"] == "done") == done]
        if pts:
            low = [r["drift"] - r["drift_low"] if r["drift_low"] is not None else 0.0 for r in pts]
            high = [r["drift_high"] - r["drift"] if r["drift_high"] is not None else 0.0 for r in pts]
            ax.errorbar([r["stage"] for r in pts], [r["drift"] for r in pts], yerr=[low, high], fmt="o", color=colour,
                        capsize=3, label="kept" if done else "retried / discarded")
    ax.set_xlabel("stage")
    ax.set_ylabel("drift (nats / token)")
    ax.legend(fontsize=7, frameon=False)
    kept = [r["stage"] for r in rows if r["status"] == "done"]
    moved = _rows(wh, "SELECT stage, prompt, answer, base_logprob, logprob, diff FROM drift_per_prompt WHERE run_id = ? "
                      f"AND stage = {int(kept[-1])} ORDER BY diff LIMIT 5", run_id) if kept else []
    return [
        '<h2 id="drift">Drift of general ability</h2>',
        f'<p class="meta">The base model\'s own greedy answers to {rows[0]["drift_n"]} neutral prompts (general knowledge, '
        "everyday instructions), recorded at baseline; drift = their mean per-token log-likelihood on the stage's adapter "
        "minus on the base model, with a 95% t interval over prompts. Negative: the adapter finds the base's answers "
        "less likely.</p>",
        _svg(fig),
        _table([{**r, "interval": _interval_text(r)} for r in rows],
               ["stage", "node_id", "kind", "status", "drift", "interval", "drift_s"]),
        *(["<p>Prompts the last kept stage moved most:</p>",
           _table(moved, ["stage", "prompt", "answer", "base_logprob", "logprob", "diff"])] if moved else []),
    ]


def _mixture_section(wh: Warehouse, run_id: str, policy: str) -> list[str]:
    """policy: mix or skill-it — what the model was fed, stage by stage: examples drawn from each node (frontier solid, replay
    hatched), and the weights behind them."""
    if not wh.has_table("stage_mixture"):
        return []
    rows = _rows(wh, "SELECT x.stage, x.node_id, x.role, x.weight, x.examples, x.tokens, s.status FROM stage_mixture x "
                     "JOIN stages s USING (run_id, stage) WHERE run_id = ? ORDER BY x.stage, x.node_id", run_id)
    if not rows:
        return []
    stages = sorted({r["stage"] for r in rows})
    nodes = list(dict.fromkeys(r["node_id"] for r in sorted(rows, key=lambda r: (r["stage"], r["node_id"]))))
    colours = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(stages) + 3), 3.2))
    bottom = [0] * len(stages)
    for i, node in enumerate(nodes):
        for role, hatch in (("frontier", None), ("replay", "///")):
            got = {r["stage"]: r["examples"] for r in rows if r["node_id"] == node and r["role"] == role}
            heights = [got.get(s, 0) for s in stages]
            if any(heights):
                ax.bar(range(len(stages)), heights, bottom=bottom, color=colours(i % 20), hatch=hatch, edgecolor="white",
                       label=node if role == "frontier" or not any(r["node_id"] == node and r["role"] == "frontier"
                                                                    for r in rows) else None)
                bottom = [b + h for b, h in zip(bottom, heights)]
    ax.set_xticks(range(len(stages)), [str(s) for s in stages], fontsize=7)
    ax.set_xlabel("stage")
    ax.set_ylabel("examples drawn")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1, 1), frameon=False)
    held = ("the held ones (hatched) at their own weights, which grow with their open dependants' gaps (held nodes "
            "take at most 3/4)" if policy == "skill-it" else "every held node at the replay weight (hatched)")
    return ['<h2 id="mixture">What the model was fed, stage by stage</h2>',
            '<p class="meta">Each mix stage trains the open nodes weighted by their gap to the gate (solid) and '
            f"{held}; weights add up to 1 per stage.</p>",
            _svg(fig), _table(rows, ["stage", "node_id", "role", "weight", "examples", "tokens", "status"])]


CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#202124}
h1{font-size:22px}h2{font-size:17px;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:12px;width:100%}td,th{border:1px solid #ddd;padding:3px 6px;vertical-align:top}
th{background:#f5f5f5;text-align:left}svg{max-width:100%;height:auto}.meta{color:#5f6368}"""


def _parent_link(run: dict[str, Any]) -> str:
    """A run continued with --from links to its parent's report (beside it in the same runs folder)."""
    parent = run.get("parent_run")
    if not parent:
        return ""
    name = html.escape(parent)
    return (f'<p class="meta" id="parent">continued from run <a href="../{html.escape(parent, quote=True)}/report.html">'
            f"{name}</a>: its unchanged nodes kept their status, training went on from its last accepted adapter</p>")


def render_report(wh: Warehouse, run_id: str) -> str:
    """The report's HTML text for one run of the warehouse."""
    found = _rows(wh, "SELECT r.*, g.yaml_text FROM runs r JOIN graph_snapshots g USING (graph_hash) WHERE run_id = ?", run_id)
    if not found:
        raise KeyError(f"no run '{run_id}' in {wh.path}")
    run = found[0]
    doc = yaml.safe_load(run["yaml_text"]) or {}
    walked = json.loads(run["config"] or "{}").get("nodes")  # a profile run's nodes; None for the whole graph
    nodes = {n: body for n, body in doc.get("nodes", {}).items() if walked is None or n in walked}
    decisions = _rows(wh, "SELECT seq, stage, node_id, action, attempt, score_before, score_after, n_items, ci_low, ci_high, "
                          "gate, reason FROM decisions WHERE run_id = ? ORDER BY seq", run_id)
    node_scores = _rows(wh, """
        SELECT node_id, stage, score, n_items, pool, ci_low, ci_high, method, confidence, gate,
               CASE WHEN ci_low >= gate THEN 'over' WHEN ci_high < gate THEN 'under' ELSE 'unclear' END AS vs_gate
        FROM node_scores WHERE run_id = $1 AND (node_id, stage) IN
             (SELECT (node_id, scored_at) FROM final_status WHERE run_id = $1)
        ORDER BY node_id""", run_id)
    cells = _rows(wh, "SELECT stage, node_id, score FROM mastery_matrix WHERE run_id = ? AND accepted ORDER BY stage", run_id)
    steps = _rows(wh, "SELECT t.stage, s.node_id, t.step, t.loss FROM train_steps t JOIN stages s USING (run_id, stage) "
                      "WHERE run_id = ? ORDER BY t.stage, t.step", run_id)
    stages = _rows(wh, "SELECT stage, node_id, attempt, kind, parent_stage, status, steps, rounds, stop_reason, tokens, "
                       "seconds, train_loss FROM stages WHERE run_id = ? ORDER BY stage", run_id)
    split = "p.split" if wh.has_table("exam_scores") else "'unsplit' AS split"
    worst = _rows(wh, f"""
        SELECT p.stage, p.node_id, {split}, p.probe_kind, p.prompt, p.output, p.reference, p.score, p.copied
        FROM probe_results p
        JOIN (SELECT node_id, scored_at AS stage FROM final_status WHERE run_id = $1) last USING (node_id, stage)
        WHERE p.run_id = $1 ORDER BY p.score, p.node_id LIMIT 25""", run_id)
    cols, rows = mastery_table(wh, run_id)
    verdict = [dict(zip(cols, r)) for r in rows]
    status = node_status(wh, run_id, nodes)
    scores: dict[str, list[tuple[float, float]]] = {}
    for c in cells:
        scores.setdefault(c["node_id"], []).append((c["stage"], c["score"]))
    losses: dict[str, list[tuple[float, float]]] = {}
    for s in steps:
        key = f"stage {s['stage']} {s['node_id']}"
        losses.setdefault(key, []).append((s["step"], s["loss"]))
    parts = [
        f"<h1>Run {html.escape(run_id)} — {html.escape(run['curriculum'])}</h1>",
        f'<p class="meta">policy {html.escape(run["policy"])} · seed {run["seed"]} · base {html.escape(run["base_model"])} · '
        f"status {html.escape(run['status'])} · started {run['started_at']} · {len(stages)} stages</p>",
        _parent_link(run),
        '<h2 id="verdict">Verdict: each node on its exam items (items no decision read) at the end, with n and 95 % '
        'bounds; base: the base model on the check items, before any decision; unsplit: too few items to split, '
        'read on the items that steered the run; check: the end score on the check items the run decided on</h2>',
        _table(verdict, ["node_id", "status", "split", "baseline", "final", "n", "ci_low", "ci_high", "check", "check_n"]),
        '<h2 id="graph">Graph, coloured by node status</h2>', _graph_svg(nodes, status) if nodes else "<p>no nodes</p>",
        '<h2 id="heatmap">Mastery R[stage, node], on the adapters the run kept</h2>', _heatmap_svg(cells) if cells else "<p>no probe results</p>",
        '<h2 id="scores">Scores across stages</h2>', _curves_svg(scores, "stage", "mean probe score") if scores else "",
        '<h2 id="intervals">Last check score of each node on a kept adapter, with its n and one-sided bounds</h2>',
        _table(node_scores, ["node_id", "stage", "score", "n_items", "pool", "ci_low", "ci_high", "method", "confidence",
                             "gate", "vs_gate"]),
        '<h2 id="loss">Training loss</h2>', _curves_svg(losses, "optimizer step", "loss") if losses else "<p>no training</p>",
        *_mixture_section(wh, run_id, run["policy"]),
        *_drift_section(wh, run_id),
        '<h2 id="stages">Stages</h2>', _table(stages, list(stages[0]) if stages else []),
        '<h2 id="decisions">Decisions</h2>',
        _table(decisions, ["seq", "stage", "node_id", "action", "attempt", "score_before", "score_after", "n_items", "ci_low",
                           "ci_high", "gate", "reason"], "decisions"),
        '<h2 id="worst">Worst probe answers (each node\'s last kept stage)</h2>',
        _table(worst, ["stage", "node_id", "split", "probe_kind", "prompt", "output", "reference", "score", "copied"]),
    ]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Run {html.escape(run_id)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n")


def write_report(wh: Warehouse, run_id: str, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(out.name + ".partial")
    staging.write_text(render_report(wh, run_id), encoding="utf-8")
    staging.replace(out)
    return out
