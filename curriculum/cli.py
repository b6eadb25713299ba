"""The `curriculum` command: the one face of the domain allowed to reach flows and warehouse.

Why one long file: typer builds `--help` from one app, and each command here is a thin edge (parse, call
flows or warehouse, print); the work is in those packages and its tables in curriculum/display.py. Imports
are deferred into each command so `curriculum --help` never loads torch or Prefect.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from curriculum.display import DRIFT_NOTE, diff_lines, drift_table, mastery_rich, runs_table
from curriculum.mastery import NOTE as MASTERY_NOTE
from curriculum.schema import schema_json
from curriculum.summary import summary_lines
from curriculum.problems import CurriculumError
from curriculum.validate import check_curriculum, select_profile

HELP = (
    "Teach a language model a curriculum, node by node, and see what it has mastered.\n\n"
    "A curriculum is a graph of concepts in YAML with JSONL data (graphs/hyperwords.yaml is bundled). `run` trains "
    "a LoRA stage per node on what its prerequisites left, probes it, and retries, branches to a remedial node or "
    "backs off as its gate decides; every stage, probe item and decision lands in a DuckDB warehouse.\n\n"
    "Start with `curriculum validate graphs/hyperwords.yaml`, then `curriculum run graphs/hyperwords.yaml "
    "--profile demo`; look at the result with `report`, take it away with `export`.")

app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _checked(path: Path):
    """The loaded curriculum, or every problem on stderr and exit 1 with nothing written."""
    loaded, problems = check_curriculum(path)
    if loaded is None:
        for problem in problems:
            err.print(str(problem), markup=False)
        err.print(f"{len(problems)} problem(s); nothing was run or written.", style="red")
        raise typer.Exit(1)
    return loaded


def _profiled(loaded, profile: str | None):
    """The profile's part of the curriculum (all of it without one), or its one-line error and exit 1."""
    if not profile:
        return loaded
    try:
        return select_profile(loaded, profile)
    except CurriculumError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None


@app.command()
def validate(path: Path = typer.Argument(..., help="curriculum YAML")) -> None:
    """Check a curriculum and its data before running it: every problem as file:line:col, or a summary."""
    loaded = _checked(path)
    for line in summary_lines(loaded):
        out.print(line, markup=False)


def _offline_unless_hub(base: str) -> None:
    """No network at run time unless the graph names a hub model."""
    from curriculum.bases import stay_offline
    from curriculum.models import BUNDLED, TINY

    if base in (BUNDLED, TINY) or Path(base).expanduser().is_dir():
        stay_offline()


@app.command()
def run(
    graph: Path = typer.Argument(..., help="curriculum YAML"),
    policy: str | None = typer.Option(None, help="mix | gated | greedy | bandit | random | flat | fixed (default: the YAML's)"),
    seed: int | None = typer.Option(None, help="training and policy seed (default 0)"),
    max_stages: int | None = typer.Option(None, help="budget of training stages"),
    max_steps: int | None = typer.Option(None, help="every node's budget of optimizer steps (over the YAML's)"),
    resume: str | None = typer.Option(None, help="continue a killed run by its id, with the settings it was started with"),
    run_id: str | None = typer.Option(None, help="id for a new run (default: random)"),
    db: Path | None = typer.Option(None, "--db", help="warehouse file"),
    runs_dir: Path | None = typer.Option(None, help="where stage adapters are written (default runs)"),
    train_deployment: str | None = typer.Option(None, help="train stages on this deployment, e.g. train-stage/gpu"),
    profile: str | None = typer.Option(None, help="run only this profile of the YAML (e.g. demo)"),
    from_run: str | None = typer.Option(None, "--from", help="start from this finished run's end state: after editing "
                                        "the YAML, only new and changed nodes and their dependants train (see `diff`)"),
    retries: int = typer.Option(2, min=0, help="retries of a stage that ran out of memory or lost its worker"),
    track: list[str] = typer.Option([], "--track", help="mirror the run to mlflow or tensorboard too (repeatable)"),
) -> None:
    """Train the model through a curriculum (in this process) and print what it mastered."""
    loaded = _checked(graph)
    from flows.setup import SetupError, given_settings, plan_run

    given = given_settings(policy=policy, seed=seed, max_stages=max_stages, runs_dir=runs_dir, profile=profile,
                           train_overrides={"max_steps": max_steps} if max_steps else None)
    try:  # every refusal the flow would make, before Prefect starts: one line, exit 1, nothing written
        plan = plan_run(loaded, given, warehouse=db, run_id=run_id, resume=resume, from_run=from_run, track=track)
    except SetupError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    loaded, runs_dir = plan.loaded, Path(plan.settings.runs_dir)
    _offline_unless_hub(loaded.spec.model.base)
    from flows.curriculum_flow import curriculum as curriculum_flow
    from flows.quiet import hide_user_fault_tracebacks
    from warehouse.db import Warehouse

    hide_user_fault_tracebacks()

    state = curriculum_flow(graph=str(graph), resume=resume, run_id=plan.run_id if not resume else None,
                            warehouse=str(db) if db else None, train_deployment=train_deployment, return_state=True,
                            retries=retries, from_run=from_run, track=track or None, **given)
    if not state.is_completed():
        err.print(f"run failed: {state.message}", markup=False)
        raise typer.Exit(1)
    _print_run(Warehouse(db), state.result(), runs_dir, from_run)


def _print_drift(wh, run_id: str) -> None:
    """Each stage's drift of general ability, when the curriculum measures it (`drift:`)."""
    from warehouse.drift import drift_by_stage

    rows = drift_by_stage(wh, run_id)
    if rows:
        out.print(drift_table(rows))
        out.print(DRIFT_NOTE, style="dim", markup=False)


def _print_run(wh, run_id: str, runs_dir: Path, from_run: str | None = None) -> None:
    """What a finished run prints (and `show` prints again): its mastery table, its drift, where its files are."""
    from warehouse.records import mastery_table

    columns, rows = mastery_table(wh, run_id)
    out.print(mastery_rich(columns, rows, f"run {run_id}"))
    out.print(MASTERY_NOTE, style="dim", markup=False)
    _print_drift(wh, run_id)
    out.print(f"warehouse: {wh.path}\nadapters:  {runs_dir / run_id}\nreport:    {runs_dir / run_id / 'report.html'}",
              markup=False)
    if from_run:
        out.print(f"continued from run {from_run}", markup=False)


@app.command()
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


@app.command()
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
    _print_run(wh, run_id, _recorded_runs_dir(run_id, db), run.get("parent_run"))


@app.command()
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
    loaded = _checked(graph)
    names = [p.strip() for p in policies.split(",") if p.strip()]
    from curriculum.policies import POLICIES

    unknown = [p for p in names if p not in POLICIES]
    if unknown or not names or len(set(names)) != len(names):
        err.print(f"--policies: {', '.join(unknown) or policies} (expected distinct names among {', '.join(POLICIES)})",
                  markup=False)
        raise typer.Exit(1)
    _profiled(loaded, profile)  # an unknown profile: one line before any run starts
    _offline_unless_hub(loaded.spec.model.base)
    from flows.compare import compare as run_comparison, comparison_lines, write_comparison

    cmp = run_comparison(str(graph), names, list(range(seeds)), profile=profile, max_steps=max_steps,
                         warehouse=str(db) if db else None, runs_dir=str(runs_dir), matters=matters,
                         log=lambda line: err.print(line, markup=False))
    for line in comparison_lines(cmp):
        out.print(line, markup=False)
    out.print(f"comparison: {write_comparison(cmp, runs_dir)}", markup=False)


@app.command()
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

    loaded = _checked(graph)
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


@app.command()
def calibrate(
    graph: Path = typer.Argument(..., help="curriculum YAML"),
    profile: str | None = typer.Option(None, help="only this profile's nodes"),
    write: Path | None = typer.Option(None, "--write", help="write a copy of the YAML with the suggested gates here"),
) -> None:
    """Suggest each node's gate from its data: chance, answer bias, the base model, reciting the data."""
    loaded = _checked(graph)
    if write is not None and write.resolve().parent != graph.resolve().parent:
        err.print(f"{write}: write the copy beside {graph} so its data paths still resolve", markup=False)
        raise typer.Exit(1)
    loaded = _profiled(loaded, profile)
    _offline_unless_hub(loaded.spec.model.base)
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


@app.command()
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


@app.command()
def serve(
    name: str = typer.Option("main", help="deployment name: runs are triggered as curriculum/NAME"),
    limit: int = typer.Option(1, help="flow runs at once in this process (training shares one machine)"),
) -> None:
    """Let Prefect trigger runs: serve the curriculum flow as deployment curriculum/NAME until stopped.

    Trigger runs with: prefect deployment run curriculum/main --param graph=graphs/hyperwords.yaml
    """
    from curriculum.bases import stay_offline

    stay_offline()  # a graph naming a hub model needs these set to 0 by the user
    from flows.curriculum_flow import curriculum as curriculum_flow

    curriculum_flow.serve(name=name, limit=limit, print_starting_message=True)


@app.command("deploy-trainer")
def deploy_trainer(
    pool: str = typer.Option("gpu", help="process work pool whose workers train stages (create it first)"),
    name: str = typer.Option("gpu", help="deployment name: the curriculum flow calls train-stage/NAME"),
) -> None:
    """Train stages on other machines: register the train-stage deployment for a work pool's workers.

    Start workers with: prefect worker start --pool POOL
    """
    import flows
    from flows.train_stage_flow import train_stage_flow

    root = Path(flows.__file__).resolve().parent.parent
    flow: Any = train_stage_flow.from_source(source=str(root), entrypoint="flows/train_stage_flow.py:train_stage_flow")
    flow.deploy(
        name=name, work_pool_name=pool, print_next_steps=False)
    out.print(f"deployment train-stage/{name} on pool '{pool}'; run curricula with --train-deployment train-stage/{name}")


@app.command()
def bridge(
    text: str = typer.Argument(..., help="a sentence with hyperwords (or, with --compress, a plain phrase)"),
    run_id: str = typer.Option(..., "--run", help="the trained run whose final adapter speaks"),
    compress: bool = typer.Option(False, "--compress", help="plain phrase -> the learned hyperword"),
    db: Path | None = typer.Option(None, "--db", help="warehouse file"),
) -> None:
    """Talk to a trained run (HyperBridge): expand hyperwords into plain words, or --compress a phrase to one."""
    import duckdb

    from probes.bridge import bridge as speak
    from warehouse.db import Warehouse
    from warehouse.records import final_adapter, run_lexicon

    try:
        base, adapter = final_adapter(Warehouse(db), run_id)
        words = run_lexicon(Warehouse(db), run_id)
    except (KeyError, FileNotFoundError, duckdb.Error) as exc:
        err.print(str(exc).strip("'\""), markup=False)
        raise typer.Exit(1) from None
    _offline_unless_hub(base)
    from curriculum.integrity import IntegrityError

    try:
        said = speak(base, Path(adapter) if adapter else None, text, compress=compress, words=words)
    except IntegrityError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    out.print(said, markup=False)


@app.command()
def export(
    run_id: str = typer.Argument(..., help="the run whose result to take away"),
    out_path: Path = typer.Argument(..., metavar="OUT", help="new (or empty) folder to write"),
    merge: bool = typer.Option(False, "--merge", help="a standalone model (base + adapter merged) instead of a PEFT folder"),
    db: Path | None = typer.Option(None, "--db", help="warehouse file"),
) -> None:
    """Take a run's result elsewhere: its final adapter as a PEFT folder, or a standalone model (--merge).

    --merge: a Hugging Face model folder (safetensors, tokenizer, hyperword tokens) for plain transformers.

    Both carry a model card (README.md): the curriculum, the run, its mastery table, the commands that made it.
    """
    import shlex

    import duckdb

    from curriculum.export import ExportError, RunExport, export_run
    from warehouse.db import Warehouse
    from warehouse.records import run_for_export

    try:
        run = RunExport.from_record(run_for_export(Warehouse(db), run_id), db)
        _offline_unless_hub(run.base)
        command = shlex.join(["curriculum", "export", run_id, str(out_path), *(["--merge"] if merge else []),
                              *(["--db", str(db)] if db else [])])
        written = export_run(run, out_path, merge=merge, export_command=command)
    except (KeyError, FileNotFoundError, duckdb.Error, ExportError) as exc:
        err.print(str(exc).strip("'\""), markup=False)
        raise typer.Exit(1) from None
    what = "merged model" if merge else "PEFT adapter"
    adapter = run.adapter
    assert adapter is not None  # export_run refuses a run that kept none
    out.print(f"{what} of run {run_id} ({run.curriculum}, adapter {adapter.name}) written to {written}", markup=False)
    from curriculum.integrity import recorded

    if recorded(adapter) is None:
        err.print(f"{run.adapter}: unverified (saved before checksums were recorded)", markup=False)


@app.command()
def verify(
    run_id: str = typer.Argument(..., help="the run whose folder to check"),
    runs_dir: Path | None = typer.Option(None, help="where the run's folder is (default: as the run recorded, else runs)"),
    db: Path | None = typer.Option(None, "--db", help="warehouse file"),
) -> None:
    """Check a run's saved stages byte for byte against the sha256s recorded when they were written."""
    from curriculum.integrity import IntegrityError, stage_folders, verify as verify_folder

    run_dir = (runs_dir or _recorded_runs_dir(run_id, db)) / run_id
    folders = stage_folders(run_dir)
    if not folders:
        err.print(f"{run_dir}: no stage folders here (pass --runs-dir)", markup=False)
        raise typer.Exit(1)
    damaged = []
    for folder in folders:
        try:
            verdict = verify_folder(folder)
        except IntegrityError as exc:  # SHA256SUMS itself unreadable
            damaged.append(str(exc))
            continue
        damaged += verdict.damaged
        state = ("damaged" if verdict.damaged else "verified" if verdict.verified
                 else "unverified (saved before checksums were recorded)")
        out.print(f"{folder.name}: {state}", markup=False)
    for line in damaged:
        err.print(line, markup=False)
    if damaged:
        err.print(f"{len(damaged)} damaged or missing file(s) in {run_dir}", markup=False)
        raise typer.Exit(1)


def _recorded_runs_dir(run_id: str, db: Path | None) -> Path:
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


@app.command()
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


@app.command()
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


@app.command()
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


if __name__ == "__main__":
    app()
