"""The `curriculum` command: the one face of the domain allowed to reach flows and warehouse.

Each command is a thin edge (parse, call flows or warehouse, print), in the module of its group: graphs (the
curriculum's files), running (training), results (the warehouse), adapters (what a run saved); their tables are in
display.py, the app and the edge they share in common.py. Registered here in the order `--help` lists them.
Imports are deferred into each command so `curriculum --help` never loads torch or Prefect.
"""

from __future__ import annotations

from curriculum.cli import adapters, graphs, results, running
from curriculum.cli.common import app

app.command()(graphs.validate)
app.command()(running.run)
app.command()(results.runs)
app.command()(results.show)
app.command()(results.compare)
app.command()(graphs.diff)
app.command()(graphs.calibrate)
app.command()(results.report)
app.command()(running.serve)
app.command("deploy-trainer")(running.deploy_trainer)
app.command()(adapters.bridge)
app.command()(adapters.export)
app.command()(adapters.verify)
app.command()(graphs.schema)
app.command()(graphs.generate)
app.command()(results.sql)


if __name__ == "__main__":
    app()
