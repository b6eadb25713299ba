"""The domain: curriculum graphs, their files and validation, base models, training, policies and what a run
leaves, in rooms (docs/architecture.md): graph, stats, models, loading, training, policies, runs, generators, and
the command line, cli.

Nothing here imports prefect or duckdb, flows or warehouse, but the command line (tests/test_architecture.py).
"""
