"""Commands on what a run saved: bridge (talk to its adapter), export (take it away), verify (its checksums).
"""

from __future__ import annotations

from pathlib import Path

import typer

from curriculum.cli.common import err, offline_unless_hub, out
from curriculum.cli.results import recorded_runs_dir


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
    offline_unless_hub(base)
    from curriculum.training.integrity import IntegrityError


    try:
        said = speak(base, Path(adapter) if adapter else None, text, compress=compress, words=words)
    except IntegrityError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    out.print(said, markup=False)


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


    from curriculum.runs.export import ExportError, RunExport, export_run
    from warehouse.db import Warehouse
    from warehouse.records import run_for_export


    try:
        run = RunExport.from_record(run_for_export(Warehouse(db), run_id), db)
        offline_unless_hub(run.base)
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
    from curriculum.training.integrity import recorded


    if recorded(adapter) is None:
        err.print(f"{run.adapter}: unverified (saved before checksums were recorded)", markup=False)


def verify(
    run_id: str = typer.Argument(..., help="the run whose folder to check"),
    runs_dir: Path | None = typer.Option(None, help="where the run's folder is (default: as the run recorded, else runs)"),
    db: Path | None = typer.Option(None, "--db", help="warehouse file"),
) -> None:
    """Check a run's saved stages byte for byte against the sha256s recorded when they were written."""
    from curriculum.training.integrity import IntegrityError, stage_folders, verify as verify_folder


    run_dir = (runs_dir or recorded_runs_dir(run_id, db)) / run_id
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
