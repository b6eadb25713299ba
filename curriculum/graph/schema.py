"""JSON Schema of the curriculum YAML, generated from the pydantic models."""

from __future__ import annotations

import json

from curriculum.graph.spec import Curriculum


def schema_json() -> str:
    """The schema as written to graphs/schema.json (stable key order, trailing newline)."""
    schema = Curriculum.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Curriculum graph"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
