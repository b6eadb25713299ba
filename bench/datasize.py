"""Nodes of real size, measured: a node of N two-turn chat conversations in a Parquet file, for N in 1k, 10k, 100k.

For each size, in a fresh process (so its peak memory is its own): `validate` with an empty token cache (reading the
rows through `datasets`, every row checked, every conversation chat-templated and tokenized for the length check),
`validate` again (the token cache warm), and one training stage of one optimizer step on the tiny model: its
tokenize phase (the cache warm, as after validation) and its first-step latency (from the call to the first
optimizer step). Resident anonymous memory after validation (the node as a run holds it; the Arrow table
`datasets` maps from disk is not in it) and the process's peak. The cost should grow linearly with N or better: the per-row
figures say. Last line: one JSON object. Run: .venv/bin/python bench/datasize.py [--sizes 1000,10000,100000]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/*.py would shadow the project's packages when run as scripts
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import os
import resource
import subprocess
import tempfile
import time

ROOT = Path(__file__).resolve().parent.parent


def write_node(root: Path, n: int) -> Path:
    """A graph of one node whose data is n two-turn conversations (a system prompt, two user and two assistant
    turns, distinct text in every row) in a Parquet file."""
    import datasets

    datasets.disable_progress_bars()
    rows = [{"messages": [{"role": "system", "content": "You answer briefly."},
                          {"role": "user", "content": f"What is the colour of cloak number {i}?"},
                          {"role": "assistant", "content": f"Cloak {i} is {('red', 'blue', 'grey')[i % 3]}."},
                          {"role": "user", "content": "And who wears it?"},
                          {"role": "assistant", "content": f"The keeper of gate {i % 97}."}]} for i in range(n)]
    datasets.Dataset.from_list(rows).to_parquet(str(root / "chat.parquet"))
    (root / "mc.jsonl").write_text("".join(json.dumps({"prompt": f"Pick {i}", "choices": ["yes", "no"], "answer": 0})
                                           + "\n" for i in range(2)))
    graph = root / "graph.yaml"
    graph.write_text("curriculum: size\nmodel: {base: tiny-random}\ndefaults:\n  train: {max_length: 128}\nnodes:\n"
                     "  n:\n    layer: definition\n    data: chat.parquet\n    probes: [{kind: transfer, items: mc.jsonl}]\n")
    return graph


def measure(graph: Path) -> dict:
    """In this process: validate cold and warm, then a one-step stage; peak memory."""
    from curriculum.models.bases import stay_offline

    stay_offline()
    from curriculum.models.load import TINY
    from curriculum.graph.spec import LoraConfig, TrainConfig
    from curriculum.training.batches import examples_from_records
    from curriculum.training.train import train_stage
    from curriculum.loading.validate import load_curriculum

    t0 = time.perf_counter()
    loaded = load_curriculum(graph)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    loaded = load_curriculum(graph)
    warm = time.perf_counter() - t0
    held = _rss_anon_mib()  # what the validated node costs the process while a run holds it
    examples = examples_from_records(loaded.examples["n"])
    t0 = time.perf_counter()
    result = train_stage(TINY, None, examples, LoraConfig(), TrainConfig(batch_size=8, max_length=128, replay=0.0),
                         graph.parent / "stage", progress=False, budget=1)
    first = result.log[0].seconds if result.log else None
    return {"validate_cold_s": cold, "validate_warm_s": warm, "stage_tokenize_s": result.phases["tokenize"],
            "stage_load_s": result.phases["load"], "first_step_s": (result.phases["load"] + result.phases["tokenize"]
                                                                    + (first or 0.0)),
            "stage_call_s": time.perf_counter() - t0, "tokenized": result.tokenized,
            "rss_anon_after_validate_mib": held,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _rss_anon_mib() -> float:
    """The process's resident anonymous memory now (not the files it maps, such as the Arrow table)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssAnon:")) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # the child: measure this graph, print JSON
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(Path(args.one))))
        return
    out = {}
    for n in [int(s) for s in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory(prefix=f"bench-size-{n}-") as tmp:
            root = Path(tmp)
            graph = write_node(root, n)
            env = {**os.environ, "CURRICULUM_TOKEN_CACHE": str(root / "tokens"), "HF_DATASETS_CACHE": str(root / "hf")}
            proc = subprocess.run([sys.executable, __file__, "--one", str(graph)], env=env, capture_output=True,
                                  text=True, cwd=ROOT)
            if proc.returncode:
                sys.exit(proc.stderr[-3000:])
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            row["per_1k_rows"] = {k: row[k] / n * 1000 for k in ("validate_cold_s", "validate_warm_s", "stage_tokenize_s")}
            out[n] = row
            print(n, json.dumps(row), flush=True)
    print(json.dumps({"rows": out}))


if __name__ == "__main__":
    main()
