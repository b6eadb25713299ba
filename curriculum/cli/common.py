"""What every command shares: the Typer app and its help, the consoles, and the edge every command starts at (a
curriculum checked or every problem printed and exit 1; a profile picked; no network unless the graph names a hub
model).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from curriculum.graph.problems import CurriculumError
from curriculum.loading.validate import check_curriculum, select_profile

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


def checked(path: Path):
    """The loaded curriculum, or every problem on stderr and exit 1 with nothing written."""
    loaded, problems = check_curriculum(path)
    if loaded is None:
        for problem in problems:
            err.print(str(problem), markup=False)
        err.print(f"{len(problems)} problem(s); nothing was run or written.", style="red")
        raise typer.Exit(1)
    return loaded

def profiled(loaded, profile: str | None):
    """The profile's part of the curriculum (all of it without one), or its one-line error and exit 1."""
    if not profile:
        return loaded
    try:
        return select_profile(loaded, profile)
    except CurriculumError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None

def offline_unless_hub(base: str) -> None:
    """No network at run time unless the graph names a hub model."""
    from curriculum.models.bases import stay_offline
    from curriculum.models.load import BUNDLED, TINY

    if base in (BUNDLED, TINY) or Path(base).expanduser().is_dir():
        stay_offline()
