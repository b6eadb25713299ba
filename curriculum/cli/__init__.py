"""The `curriculum` command, one module a command group, and its tables (display): the one face of the domain allowed
to reach flows and warehouse, importing them inside each command so `curriculum --help` never loads torch or
Prefect. A new command goes in the module of its group, registered in app.
"""
