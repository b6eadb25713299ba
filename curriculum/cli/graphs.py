"""Commands on a curriculum's files, before or between runs: validate, diff (against a run), calibrate, schema,
generate.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from curriculum.cli.common import checked, err, offline_unless_hub, out, profiled
from curriculum.cli.display import diff_lines
from curriculum.graph.problems import CurriculumError
from curriculum.graph.schema import schema_json
from curriculum.loading.summary import summary_lines
from curriculum.loading.validate import select_profile


def validate(path: Path = typer.Argument(..., help="curriculum YAML")) -> None:
    """Check a curriculum and its data before running it: every problem as file:line:col, or a summary."""
    loaded = checked(path)
    for line in summary_lines(loaded):
        out.print(line, markup=False)


def diff(
    run_id: str = typer.Argument(..., help="the finished run to compare with"),
    graph: Path = typer.Argument(..., help="the edited curriculum YAML"),
    db: Path | None = typer.Option(None, "--db", "--warehouse", help="warehouse file"),
    profile: str | None = typer.Option(None, help="compare only this profile of the YAML"),
    as_json: bool = typer.Option(False, "--json", help="the diff and the plan as one JSON object"),
) -> None:
    """What changed in GRAPH since run RUN_ID, and what `run GRAPH --from RUN_ID` would do with each node."""
    import duckdb


    from flows.inherit import plan_from
    from warehouse.db import Warehouse


    loaded = checked(graph)
    try:
        if profile:
            loaded = select_profile(loaded, profile)
        found = plan_from(Warehouse(db), loaded, run_id)
    except CurriculumError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    except (ValueError, duckdb.Error) as exc:
        err.print(str(exc).splitlines()[0], markup=False)
        raise typer.Exit(1) from None
    if as_json:
        sys.stdout.write(json.dumps(found.to_json(), indent=2, default=str) + "\n")
        return
    for line in diff_lines(found):
        out.print(line, markup=False)
    table = Table("node", "was", "--from", "why", title=f"--from {run_id}", title_justify="left")
    table.columns[0].no_wrap = True
    table.columns[3].overflow = "fold"
    for p in found.plan.values():
        table.add_row(p.node_id, p.status or "-", p.action, p.reason)
    out.print(table)
    counts = {a: len(found.nodes(a)) for a in ("keep", "schedule", "skip", "drop")}
    out.print(" · ".join(f"{a} {n}" for a, n in counts.items() if n or a in ("keep", "schedule")), style="dim")
    for blocker in found.blockers:
        err.print(f"--from would refuse: {blocker}", style="red", markup=False)


def calibrate(
    graph: Path = typer.Argument(..., help="curriculum YAML"),
    profile: str | None = typer.Option(None, help="only this profile's nodes"),
    write: Path | None = typer.Option(None, "--write", help="write a copy of the YAML with the suggested gates here"),
) -> None:
    """Suggest each node's gate from its data: chance, answer bias, the base model, reciting the data."""
    loaded = checked(graph)
    if write is not None and write.resolve().parent != graph.resolve().parent:
        err.print(f"{write}: write the copy beside {graph} so its data paths still resolve", markup=False)
        raise typer.Exit(1)
    loaded = profiled(loaded, profile)
    offline_unless_hub(loaded.spec.model.base)
    from probes.calibrate import calibrate as levels_of


    levels = levels_of(loaded)
    width = max(len(n) for n in levels) if levels else 4
    out.print(f"{'node':{width}s}  kind    n  chance  bias  base  recite   now   gate", markup=False)
    fmt = lambda v: "    -" if v is None else f"{v:5.2f}"  # noqa: E731
    for n, lv in levels.items():
        now = loaded.spec.gate_config(n).min_score
        now_text = f"{now:>5s}" if isinstance(now, str) else f"{now:5.2f}"
        out.print(f"{n:{width}s}  {lv.kind[:6]:6s} {lv.items:3d}  {fmt(lv.chance)}  {fmt(lv.bias)} {fmt(lv.base)}   "
                  f"{fmt(lv.recite)} {now_text}  {lv.suggested_gate():.3f}", markup=False)
    out.print("suggested = halfway from the best score that needs no learning (base model, chance, always the most "
              "frequent answer) to the top (1 for choices; the data's own answers for paraphrases)", style="dim")
    if write is not None:
        write.write_text(with_gates(loaded.text, {n: lv.suggested_gate() for n, lv in levels.items()}), encoding="utf-8")
        out.print(f"wrote {write}", markup=False)


def with_gates(text: str, gates: dict[str, float]) -> str:
    """The YAML text with each node's gate min_score set, comments and layout kept (ruamel round trip)."""
    import io


    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap


    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    doc = yaml.load(text)
    for node_id, value in gates.items():
        node = doc["nodes"][node_id]
        if node.get("gate") is None:
            gate = CommentedMap()
            gate.fa.set_flow_style()
            node.insert(1, "gate", gate)
        node["gate"]["min_score"] = value
    buf = io.StringIO()
    yaml.dump(doc, buf)
    return buf.getvalue()


def schema(out_path: Path | None = typer.Option(None, "--out", "-o", help="write here instead of stdout")) -> None:
    """Completion while editing a curriculum: the JSON Schema of its YAML (graphs/schema.json)."""
    text = schema_json()
    if out_path is None:
        sys.stdout.write(text)
    else:
        out_path.write_text(text, encoding="utf-8")
        out.print(f"wrote {out_path}")


def _sizes(given: list[str]) -> dict[str, int]:
    """--size NAME=N options as a dict, or a ValueError naming the one that is not NAME=N."""
    sizes = {}
    for option in given:
        name, _, value = option.partition("=")
        if not value.strip().isdigit():
            raise ValueError(f"--size {option}: expected NAME=N with N a whole number")
        sizes[name.strip()] = int(value)
    return sizes


def generate(
    family: str = typer.Argument(..., help="chain (dependent skills, LEGO style) | layers (facts, rules, transfer, two hops)"),
    out_dir: Path = typer.Argument(..., help="folder to write: graph.yaml and each node's train/check/exam JSONL"),
    seed: int = typer.Option(0, help="the same family, seed and sizes give the same bytes"),
    size: list[str] = typer.Option([], "--size", help="a size over its default, NAME=N (repeatable): chain: depth, "
                                   "train, check, exam, max_steps; layers: people, towns, train, check, exam, max_steps"),
    force: bool = typer.Option(False, help="overwrite a folder that is not empty"),
) -> None:
    """Write a synthetic curriculum with hundreds of exactly checked exam items a node (see the guide)."""
    from curriculum import generators


    try:
        sizes = _sizes(size)
        command = " ".join(["curriculum generate", family, "OUT", f"--seed {seed}", *(f"--size {s}" for s in size)])
        path = generators.write(generators.generate(family, seed, command, **sizes), out_dir, force)
    except (ValueError, generators.TargetExists) as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    out.print(f"wrote {path}; run it with `curriculum run {path}`", markup=False)
