"""`make gpu-check` rehearsed on the CPU at toy size: every step runs end to end and leaves its own result file,
so the script is known to work before a card ever sees it (a lease is minutes, and a call cut off at its limit
returns only the files written by then)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_gpu_check_rehearses_every_step_and_writes_each_result_as_it_ends(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "GPU_CHECK_OUT": str(out), "GPU_CHECK_COMMIT": "rehearsal"}
    done = subprocess.run([sys.executable, "bench/gpucheck.py", "--rehearse"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=580)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["exit"] == {"gpu-tests": 0, "train": 0, "precision": 0, "efficacy": 0, "demo": 0}
    files = sorted(p.name for p in out.glob("*.json"))
    assert files == ["01-gpu-tests.json", "02-train.json", "03-precision.json", "04-efficacy.json", "05-demo.json"]
    results = {f: json.loads((out / f).read_text()) for f in files}
    for name, record in results.items():
        assert record["commit"] == "rehearsal" and record["device"] and record["rehearsal"] is True, name
        assert record["seconds"] <= record["limit_s"] + 30 and all(run["command"] for run in record["runs"]), name
        assert (out / name.replace(".json", ".log")).stat().st_size > 0
    train = results["02-train.json"]["runs"][0]["figure"]
    assert train["tokens_per_s"] > 0 and train["vs_bare_loop"] > 0 and train["packing_auto"] == "off"
    precision = results["03-precision.json"]["runs"][0]["figure"]
    assert all(len(curve) == 2 for curve in precision["curves"].values())
    efficacy = results["04-efficacy.json"]
    # three arms side by side, each run's row as it ended: mix and flat-budget at its steps; skill-it and flat-budget
    # at its steps; gated
    assert sorted((r["arm"], r["run_id"]) for r in efficacy["rows"]) == [
        ("efficacy-gated", "adaptive-s0"), ("efficacy-mix", "adaptive-s0"), ("efficacy-mix", "flat-budget-s0"),
        ("efficacy-skill-it", "adaptive-s0"), ("efficacy-skill-it", "flat-budget-s0")]
    assert all(r["items_label"] == "exam items" and r["n_items"] > 0 for r in efficacy["rows"])
    assert all(isinstance(run["figure"], dict) and "policies" in run["figure"] for run in efficacy["runs"])
    tests = results["01-gpu-tests.json"]["runs"][0]["figure"]
    assert "skipped" in tests if summary["device"] == "cpu" else "passed" in tests  # pytest's summary line
