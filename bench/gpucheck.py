"""`make gpu-check`: every GPU figure from one short lease, each written the moment it is measured.

A card is lent now and then, for minutes, and a call cut off at its limit returns only the files it wrote. So
each step runs in its own process under its own time limit and writes `OUT/NN-step.json` as soon as it ends:
one JSON object with the figure (the step's own last JSON line, or its summary line), the command, commit,
device, seconds and exit status; its whole output goes to `OUT/NN-step.log`. In order, inside 8 minutes on one
H100:

1. `gpu-tests`: the `gpu` tests.
2. `train`: bench/train.py warm: ours against the bare loop and SFTTrainer, tokens/s, peak memory, MFU.
3. `precision`: fp32 against bf16, per-step loss on the bundled model, 20 steps (bench/precision.py --cuda).
4. `efficacy`: one seed of each arm of the efficacy benchmark on the generated chain, three processes on the one
   card (`mix` then `flat-budget` at its steps; `skill-it` then `flat-budget` at its steps; `gated`), each run's row in `OUT/efficacy-*/rows.jsonl` as it ends.
5. `demo`: the demo profile timed end to end.

OUT is $GPU_CHECK_OUT (default runs/gpu-check-DATE). `--rehearse` runs every step at toy size on whatever device
there is (the tiny random model, a few steps; 2 min 15 s on a free 2-core CPU): the suite
runs it, so the script is known to run end to end before a card ever sees it. Last line: one JSON object, each
step's exit status.

Run: GPU_CHECK_OUT=DIR .venv/bin/python bench/gpucheck.py [--rehearse] [--only STEP,...]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/*.py would shadow the project's packages when run as scripts
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
CLI = [PY, "-m", "curriculum.cli.app"]


@dataclass
class Step:
    """One measurement: its command, its time limit, and extra environment."""

    name: str
    limit_s: int
    commands: list[list[str]]  # several run side by side (arms sharing the card), one is the usual case
    env: dict[str, str] = field(default_factory=dict)


def commit() -> str:
    """The commit measured: $GPU_CHECK_COMMIT where the copy has no .git, else git's."""
    if os.environ.get("GPU_CHECK_COMMIT"):
        return os.environ["GPU_CHECK_COMMIT"]
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def device() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def write_chain(out: Path, rehearse: bool) -> Path:
    """The generated chain the efficacy and (rehearsed) demo steps run, written once before the steps; the rehearsal's
    is toy-sized and on the tiny random model. Its output goes to OUT/00-setup.log; a failure shows in those steps."""
    chain = out / "chain"
    size = ["--size", "depth=2", "--size", "train=16", "--size", "check=8", "--size", "exam=8",
            "--size", "max_steps=2"] if rehearse else []
    with (out / "00-setup.log").open("w") as sink:
        try:
            subprocess.run([*CLI, "generate", "chain", str(chain), "--seed", "0", "--force", *size], cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=sink, stderr=subprocess.STDOUT, timeout=120)
        except subprocess.TimeoutExpired:
            sink.write("\n(generate timed out after 120 s)\n")
    if rehearse and (chain / "graph.yaml").exists():
        on_tiny(chain / "graph.yaml")
    return chain / "graph.yaml"


def steps(out: Path, graph: Path, rehearse: bool) -> list[Step]:
    """The check, in the order the issue asks; `rehearse`: each at toy size."""
    arms = [["--policy", "mix", "--baselines", "flat-budget", "--out", str(out / "efficacy-mix")],
            ["--policy", "skill-it", "--baselines", "flat-budget", "--out", str(out / "efficacy-skill-it")],
            ["--policy", "gated", "--baselines", "", "--out", str(out / "efficacy-gated")]]
    efficacy = [[PY, "bench/curriculum.py", "--graph", str(graph), "--seeds", "1", *arm] for arm in arms]
    demo = ([*CLI, "run", str(graph), "--max-steps", "1"] if rehearse
            else [*CLI, "run", "graphs/hyperwords.yaml", "--profile", "demo", "--max-steps", "20"])
    demo += ["--run-id", f"gpu-demo-{time.strftime('%Y%m%d-%H%M%S')}", "--db", str(out / "demo.duckdb"),
             "--runs-dir", str(out / "demo-runs")]
    tiny = {"BENCH_BASE": "tiny-random"}
    return [
        Step("gpu-tests", 90, [[PY, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-m", "gpu", "tests/test_gpu.py"]]),
        Step("train", 80, [[PY, "bench/train.py"]], {"BENCH_TRAIN_EXAMPLES": "8", **tiny} if rehearse else {}),
        Step("precision", 70, [[PY, "bench/precision.py", *(["--steps", "2"] if rehearse else ["--cuda", "--steps", "20"])]],
             tiny if rehearse else {}),
        Step("efficacy", 130, efficacy),
        Step("demo", 100, [demo]),
    ]


def on_tiny(graph: Path) -> None:
    """The rehearsal's curriculum on the tiny random model: the mechanics at toy cost."""
    text = graph.read_text()
    graph.write_text(text.replace("base: smollm2-135m-instruct", "base: tiny-random"))


def summary_of(output: str) -> object:
    """The step's figure: its last line that is one JSON object (the benchmarks' convention; Prefect may log after
    it), else its last non-empty line (pytest's summary)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return lines[-1] if lines else None


def _finish(proc: subprocess.Popen, left: float) -> tuple[str, int]:
    """The process's output and exit status, or 124 once `left` seconds are up: then its whole process group is
    killed (a Prefect server or a training worker it started would hold the card into the next step)."""
    try:
        output, _ = proc.communicate(timeout=left)
        return output, proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        return output, 124


def run_step(k: int, step: Step, out: Path, facts: dict[str, Any]) -> int:
    """Run one step's commands side by side under its limit; write its result file the moment they end. The step's
    status is the first non-zero one (a run killed by a signal counts)."""
    env = {**os.environ, **step.env, "PYTHONPATH": str(ROOT)}
    log = out / f"{k:02d}-{step.name}.log"
    started = time.perf_counter()

    def left() -> float:
        return max(1.0, step.limit_s - (time.perf_counter() - started))

    def launch(cmd: list[str]) -> subprocess.Popen:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)

    results = []
    with log.open("w") as sink:
        for cmd, proc in [(cmd, launch(cmd)) for cmd in step.commands]:
            output, rc = _finish(proc, left())
            sink.write(f"$ {' '.join(cmd)}\n{output}\n(exit {rc})\n")
            results.append({"command": " ".join(cmd), "rc": rc, "figure": summary_of(output)})
    rows = sorted(out.glob("efficacy-*/rows.jsonl")) if step.name == "efficacy" else []
    record = {"step": step.name, "rc": next((r["rc"] for r in results if r["rc"]), 0),
              "seconds": round(time.perf_counter() - started, 1), "limit_s": step.limit_s, **facts, "runs": results,
              **({"rows": [{"arm": f.parent.name, **json.loads(line)} for f in rows for line in f.read_text().splitlines()]}
                 if rows else {})}
    (out / f"{k:02d}-{step.name}.json").write_text(json.dumps(record, default=str) + "\n")
    print(f"{step.name}: exit {record['rc']} in {record['seconds']} s", flush=True)
    return record["rc"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rehearse", action="store_true", help="every step at toy size, on whatever device there is")
    ap.add_argument("--only", default="", help="comma-separated step names (default: all, in order)")
    args = ap.parse_args()
    out = Path(os.environ.get("GPU_CHECK_OUT") or ROOT / "runs" / f"gpu-check-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    facts = {"commit": commit(), "device": device(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "rehearsal": args.rehearse}
    wanted = [s for s in args.only.split(",") if s]
    codes = {}
    graph = write_chain(out, args.rehearse)
    for k, step in enumerate(steps(out, graph, args.rehearse), 1):
        if wanted and step.name not in wanted:
            continue
        codes[step.name] = run_step(k, step, out, facts)
    print(json.dumps({**facts, "out": str(out), "exit": codes}))
    sys.exit(1 if any(codes.values()) else 0)


if __name__ == "__main__":
    main()
