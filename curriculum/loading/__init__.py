"""A curriculum from its files to a `LoadedCurriculum`: each data format and container read (jsonl, datasources,
taskfiles, taskcheck), every check with its place (validate), the check/exam split of probe items (exam), choice
levels (calibration) and the one-screen summary. A new data format goes in datasources. Imports graph, stats and
models; never prefect, duckdb, flows or warehouse.
"""
