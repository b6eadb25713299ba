"""The curriculum as its author writes it: the pydantic models of the graph YAML (spec), the JSON Schema made from
them, the YAML's line and column of every value (yamlpos), and the one-line `file:line:col` problem every check
reports (problems). The bottom room: it imports nothing of the product.
"""
