"""The domain: curriculum graphs and their validation, models, training and policies.

Nothing here imports prefect or duckdb; only `curriculum.cli.app` reaches flows and warehouse.
"""
