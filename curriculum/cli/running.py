"""Commands that train: run (in this process), serve (as a Prefect deployment), deploy-trainer (stages on other
machines).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from curriculum.cli.common import checked, err, offline_unless_hub, out
from curriculum.cli.results import print_run


def run(
    graph: Path = typer.Argument(..., help="curriculum YAML"),
    policy: str | None = typer.Option(None, help="mix | skill-it | gated | greedy | bandit | random | flat | fixed (default: the YAML's)"),
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
    loaded = checked(graph)
    from flows.setup import SetupError, given_settings, plan_run


    given = given_settings(policy=policy, seed=seed, max_stages=max_stages, runs_dir=runs_dir, profile=profile,
                           train_overrides={"max_steps": max_steps} if max_steps else None)
    try:  # every refusal the flow would make, before Prefect starts: one line, exit 1, nothing written
        plan = plan_run(loaded, given, warehouse=db, run_id=run_id, resume=resume, from_run=from_run, track=track)
    except SetupError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    loaded, runs_dir = plan.loaded, Path(plan.settings.runs_dir)
    offline_unless_hub(loaded.spec.model.base)
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
    print_run(Warehouse(db), state.result(), runs_dir, from_run)


def serve(
    name: str = typer.Option("main", help="deployment name: runs are triggered as curriculum/NAME"),
    limit: int = typer.Option(1, help="flow runs at once in this process (training shares one machine)"),
) -> None:
    """Let Prefect trigger runs: serve the curriculum flow as deployment curriculum/NAME until stopped.


    Trigger runs with: prefect deployment run curriculum/main --param graph=graphs/hyperwords.yaml
    """
    from curriculum.models.bases import stay_offline


    stay_offline()  # a graph naming a hub model needs these set to 0 by the user
    from flows.curriculum_flow import curriculum as curriculum_flow


    curriculum_flow.serve(name=name, limit=limit, print_starting_message=True)


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
