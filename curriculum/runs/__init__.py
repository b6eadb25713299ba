"""What a run leaves and how it is read again: the files and settings it was made from (lineage, inputs), the mastery
table (mastery) and an adapter bundle to take away (export). Imports every domain room; never prefect, duckdb,
flows or warehouse.
"""
