"""Prefect flows: the curriculum loop and its deployment.

Offline-friendly defaults are set before Prefect is imported: no telemetry, and a longer
wait for the ephemeral server, whose first start on a fresh PREFECT_HOME takes 20-35 s.
"""

import os

for _key, _value in {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_API_HOST": "127.0.0.1",
}.items():
    os.environ.setdefault(_key, _value)
