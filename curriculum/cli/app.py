"""The `curriculum` command: the one face of the domain allowed to reach flows and warehouse.

Each command is a thin edge (parse, call flows or warehouse, print), in the module of its group: graphs (the
curriculum's files), running (training), results (the warehouse), adapters (what a run saved); their tables are in
display.py, the app and the edge they share in common.py. Registered here in the order `--help` lists them.
Imports are deferred into each command so `curriculum --help` never loads torch or Prefect.
"""

from __future__ import annotations

from collections.abc import Callable

from curriculum.cli import adapters, graphs, results, running
from curriculum.cli.common import app

COMMANDS: list[Callable[..., None]] = [  # in the order `--help` lists them
    graphs.validate, running.run, results.runs, results.show, results.compare, graphs.diff, graphs.calibrate,
    results.report, running.serve, running.deploy_trainer, adapters.bridge, adapters.export, adapters.verify,
    graphs.schema, graphs.generate, results.sql]
for command in COMMANDS:
    app.command(command.__name__.replace("_", "-"))(command)


if __name__ == "__main__":
    app()
