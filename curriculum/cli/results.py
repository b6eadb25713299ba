"""Commands that read the warehouse: runs, show, compare, report, sql; and what a finished run prints.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from curriculum.cli.common import checked, err, offline_unless_hub, out, profiled
from curriculum.cli.display import DRIFT_NOTE, drift_table, mastery_rich, runs_table
from curriculum.runs.mastery import NOTE as MASTERY_NOTE


def print_drift(wh, run_id: str) -> None:
    """Each stage's drift of general ability, when the curriculum measures it (`drift:`)."""
    from warehouse.drift import drift_by_stage


    rows = drift_by_stage(wh, run_id)
    if rows:
        out.print(drift_table(rows))
        out.print(DRIFT_NOTE, style="dim", markup=False)


def print_run(wh, run_id: str, runs_dir: Path, from_run: str | None = None) -> None:
    """What a finished run prints (and `show` prints again): its mastery table, its drift, where its files are."""
    from warehouse.records import mastery_table


    columns, rows = mastery_table(wh, run_id)
    out.print(mastery_rich(columns, rows, f"run {run_id}"))
    out.print(MASTERY_NOTE, style="dim", markup=False)
    print_drift(wh, run_id)
    out.print(f"warehouse: {wh.path}\nadapters:  {runs_dir / run_id}\nreport:    {runs_dir / run_id / 'report.html'}",
              markup=False)
    if from_run:
        out.print(f"continued from run {from_run}", markup=False)


def runs(db: Path | None = typer.Option(None, "--db", help="warehouse file")) -> None:
    """The runs in the warehouse, newest first: id, graph, policy, seed, status, stages trained, start, wall time."""
    from warehouse.db import Warehouse
    from warehouse.records import run_list


    wh = Warehouse(db)
    found = run_list(wh)
    if not found:
        out.print(f"no runs in {wh.path} yet: start one with `curriculum run GRAPH.yaml`", markup=False)
        return
    table = runs_table(found, f"{len(found)} run(s) in {wh.path}")
    wide = out if out.is_terminal else Console(highlight=False, width=400)  # piped: every cell whole, for grep and awk
    wide.print(table)


def show(
    run_id: str = typer.Argument(..., help="a run's id (see `curriculum runs`)"),
    db: Path | None = typer.Option(None, "--db", help="warehouse file"),
) -> None:
    """A run's mastery and drift tables again, as `run` printed them, and where its files are."""
    from warehouse.db import Warehouse
    from warehouse.records import get_run


    wh = Warehouse(db)
    run = get_run(wh, run_id)
    if run is None:
        err.print(f"no run '{run_id}' in {wh.path} (see `curriculum runs`)", markup=False)
        raise typer.Exit(1)
    if run["status"] != "completed":
        out.print(f"run {run_id} is {run['status']}" + (f": {run['error']}" if run.get("error") else ""), markup=False)
    print_run(wh, run_id, recorded_runs_dir(run_id, db), run.get("parent_run"))


def compare(
    graph: Path = typer.Argument(..., help="curriculum YAML"),
    policies: str = typer.Option("mix,gated,flat", help="comma-separated; the first is the one under test, `flat` "
                                 "gets its steps (same seed)"),
    seeds: int = typer.Option(3, min=1, help="seeds 0..N-1 (runs already in the warehouse are read, not trained again)"),
    profile: str | None = typer.Option(None, help="run only this profile of the YAML (e.g. demo)"),
    max_steps: int | None = typer.Option(None, help="every node's budget of optimizer steps (over the YAML's)"),
    db: Path | None = typer.Option(None, "--db", help="warehouse file"),
    runs_dir: Path = typer.Option(Path("runs"), help="where the runs and the comparison page are written"),
    matters: float = typer.Option(0.05, min=0.0, help="the smallest difference in exam score that matters to you: an "
                                  "interval across 0 is 'level' when the comparison could detect it, else 'underpowered'"),
) -> None:
    """Does the curriculum pay off on your graph? Policies side by side on the same exam items, paired by seed, each
    difference with its n, interval and the smallest difference it could have detected."""
    loaded = checked(graph)
    names = [p.strip() for p in policies.split(",") if p.strip()]
    from curriculum.policies.registry import POLICIES


    unknown = [p for p in names if p not in POLICIES]
    if unknown or not names or len(set(names)) != len(names):
        err.print(f"--policies: {', '.join(unknown) or policies} (expected distinct names among {', '.join(POLICIES)})",
                  markup=False)
        raise typer.Exit(1)
    profiled(loaded, profile)  # an unknown profile: one line before any run starts
    offline_unless_hub(loaded.spec.model.base)
    from flows.compare import compare as run_comparison, comparison_lines, write_comparison


    cmp = run_comparison(str(graph), names, list(range(seeds)), profile=profile, max_steps=max_steps,
                         warehouse=str(db) if db else None, runs_dir=str(runs_dir), matters=matters,
                         log=lambda line: err.print(line, markup=False))
    for line in comparison_lines(cmp):
        out.print(line, markup=False)
    out.print(f"comparison: {write_comparison(cmp, runs_dir)}", markup=False)


def report(
    run_id: str = typer.Argument(..., help="the run to report on"),
    db: Path | None = typer.Option(None, "--db", help="warehouse file"),
    out_path: Path | None = typer.Option(None, "--out", "-o", help="HTML file (default: runs/RUN_ID/report.html)"),
) -> None:
    """See a run in a browser: a self-contained HTML report (graph, heatmap, curves, decisions, answers)."""
    import duckdb


    from warehouse.db import Warehouse
    from warehouse.report import write_report


    wh = Warehouse(db)
    try:
        path = write_report(wh, run_id, out_path or Path("runs") / run_id / "report.html")
    except (KeyError, FileNotFoundError, duckdb.Error) as exc:
        err.print(str(exc).strip("'\""), markup=False)
        raise typer.Exit(1) from None
    out.print(f"report: {path}", markup=False)


def sql(
    query: str = typer.Argument(..., help="SQL to run, read-only"),
    db: Path | None = typer.Option(None, "--db", help="warehouse file (default: $CURRICULUM_WAREHOUSE or warehouse/curriculum.duckdb)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per row instead of a table"),
) -> None:
    """Ask the warehouse anything: read-only SQL over runs, stages, probe items and decisions."""
    import duckdb


    from warehouse.db import Warehouse


    wh = Warehouse(db)
    try:
        columns, rows = wh.query(query)
    except (FileNotFoundError, duckdb.Error) as exc:
        err.print(f"{wh.path}: {str(exc).splitlines()[0]}", markup=False)
        raise typer.Exit(1) from None
    if as_json:
        for row in rows:
            out.print(json.dumps(dict(zip(columns, row)), default=str), markup=False)
        return
    table = Table(*columns, show_lines=False)
    for row in rows:
        table.add_row(*("NULL" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    out.print(table)
    out.print(f"{len(rows)} row(s)", style="dim")


def recorded_runs_dir(run_id: str, db: Path | None) -> Path:
    """The runs folder the run recorded, when the warehouse has it; else runs."""
    import duckdb


    from warehouse.db import Warehouse
    from warehouse.records import get_run


    try:
        run = get_run(Warehouse(db), run_id)
    except duckdb.Error:
        run = None
    config = json.loads(run["config"] or "{}") if run else {}
    return Path(config.get("runs_dir") or "runs")
