"""Can the signals be trusted? Five measurements, one run, one JSON line.

- metric_pair_accuracy: hand-written pairs of answers to probe prompts (bench/pairs/*.jsonl, one file per
  writer: hyperwords.jsonl written blind to the references and facts; *_by_scorer_author.jsonl by whoever wrote
  the scoring; one right,
  one fluent but wrong, or right but terse against wrong but verbose, or against vague filler); the share
  the paraphrase score ranks right, beside the earlier cosine score (ParaScore on one reference) as baseline.
- recite_passes: paraphrase nodes whose gate the nearest training answer, recited, would clear.
- biased_model_raw_acc / biased_model_calibrated_acc / chance: a stage trained only to say one hyperword,
  then every bundled choice probe, scored raw and calibrated.
- null_stage_false_alarms: a stage that changes nothing (learning rate 0), probed like a run probes its
  stages (a trained node's draw, rotating regression samples, different batch mixes); the paired forgetting
  tests that fire, and the rehearsals they would trigger.
- split_half_agreement: over a demo run's adapters (base included), each node's gate call on two disjoint
  halves of its items; the share that agree.

Run: .venv/bin/python bench/signals.py [--run RUN_ID --db FILE --runs-dir DIR]   (without --run it runs the
demo profile first). --pairs-only prints the metric figures alone (seconds, no language model).
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/*.py would shadow the project's packages when run as scripts
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import tempfile
import time
from collections import defaultdict

from curriculum.models.bases import stay_offline

stay_offline()

from curriculum.models.chat import Example
from curriculum.policies.draws import first_items, pool_keys, regression_items
from curriculum.stats.evidence import Evidence, evidence_from, gate_call, paired_drop
from curriculum.loading.validate import LoadedCurriculum, load_curriculum
from probes.kinds import item_facts
from probes.results import evidence_of
from probes.scoring import COPY_THRESHOLD, fact_recall, meaning, novelty, paraphrase_score
from probes.similarity import cosine_best, cosine_pairs

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "graphs" / "hyperwords.yaml"
SECOND = ROOT / "graphs" / "archipelago.yaml"
BIAS_WORD = "stoneheavywait"


def old_score(sim: float, d: float) -> float:
    """The earlier paraphrase score, kept as the baseline: cosine to one reference + 0.05·DS(novelty)."""
    gamma = 0.35
    ds = gamma if d >= gamma else -1.0 + ((gamma + 1.0) / gamma) * d
    return min(1.0, max(0.0, sim + 0.05 * ds))


def item_of(loaded: LoadedCurriculum, node: str, prompt: str):
    for i, probe in enumerate(loaded.spec.nodes[node].probes):
        if probe.kind == "paraphrase":
            for rec in loaded.probe_items[node][i]:
                if rec.value.prompt == prompt:
                    return rec.value
    raise KeyError(f"{node}: no paraphrase item with prompt {prompt!r}")


def metric_pairs() -> dict:
    """The share of pairs each score ranks right (a tie counts as wrong), by graph and kind."""
    graphs: dict[str, LoadedCurriculum] = {}
    rows = []
    for path in sorted((ROOT / "bench" / "pairs").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append({**json.loads(line), "file": path.stem})
    for r in rows:
        graphs.setdefault(r["graph"], load_curriculum(ROOT / r["graph"]))
    items = [item_of(graphs[r["graph"]], r["node"], r["prompt"]) for r in rows]
    answers = [[a.value.answer for a in graphs[r["graph"]].examples[r["node"]]] for r in rows]
    texts = [a for r in rows for a in (r["better"], r["worse"])]
    best = cosine_best(texts, [it.all_references() for it in items for _ in (0, 1)])
    single = cosine_pairs(texts, [it.reference for it in items for _ in (0, 1)])
    tally: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for k, (r, it, train) in enumerate(zip(rows, items, answers)):
        new, old = [], []
        for j, text in enumerate((r["better"], r["worse"])):
            d = novelty(text, train)
            new.append(paraphrase_score(best[2 * k + j], fact_recall(text, item_facts(it)), d))
            old.append(old_score(single[2 * k + j], d))
        for key in ("all", r["file"], r["kind"]):
            tally["new"][key].append(int(new[0] > new[1]))
            tally["old"][key].append(int(old[0] > old[1]))
    share = {s: {k: round(sum(v) / len(v), 4) for k, v in t.items()} for s, t in tally.items()}
    counts = {k: len(v) for k, v in tally["new"].items()}
    print(f"metric pairs: {counts['all']} ({', '.join(f'{k} {v}' for k, v in counts.items() if k != 'all')})")
    for key in counts:
        print(f"  {key:32s} ours {share['new'][key]:.3f}   cosine (earlier) {share['old'][key]:.3f}   n={counts[key]}")
    return {"metric_pair_accuracy": share["new"]["all"], "metric_pair_accuracy_cosine": share["old"]["all"],
            "metric_pairs": counts["all"], "metric_pair_by_group": share}


def numeric_gate(loaded: LoadedCurriculum, node: str, base: float | None = None) -> float:
    value = loaded.spec.gate_config(node).min_score
    if value != "auto":
        return value
    from probes.calibrate import node_levels

    return node_levels(loaded, node, base).suggested_gate()


def recite_passes() -> dict:
    """Each paraphrase node answered, item by item, with its nearest training answer (by meaning)."""
    passes, checked = [], 0
    for path in (BUNDLED, SECOND):
        if not path.exists():
            continue
        loaded = load_curriculum(path)
        for node, spec in loaded.spec.nodes.items():
            train = [r.value.answer for r in loaded.examples[node]]
            rows = []
            for i, probe in enumerate(spec.probes):
                if probe.kind != "paraphrase":
                    continue
                for rec in loaded.probe_items[node][i]:
                    sims = cosine_best(train, [rec.value.all_references()] * len(train))
                    nearest = max(range(len(train)), key=lambda j: meaning(sims[j], fact_recall(train[j], item_facts(rec.value))))
                    d = novelty(train[nearest], train)
                    rows.append((i, rec.line, "paraphrase", paraphrase_score(sims[nearest], fact_recall(train[nearest], item_facts(rec.value)), d)))
            if not rows:
                continue
            checked += 1
            ev = evidence_from(rows, len(rows))
            if gate_call(ev, numeric_gate(loaded, node), loaded.spec.gate_config(node).confidence).passed:
                passes.append(node)
    print(f"reciting the nearest training answer clears {len(passes)} of {checked} paraphrase gates"
          f" (an answer within edit distance {COPY_THRESHOLD} of a training answer scores 0)")
    return {"recite_passes": len(passes), "recite_checked": checked}


def biased_model(tmp: Path) -> dict:
    """A stage that teaches the model to answer one hyperword to anything; then every bundled choice probe."""
    from curriculum.training.train import train_stage
    from probes.prober import Prober

    loaded = load_curriculum(BUNDLED)
    examples = [Example(r.value.prompt, f"{BIAS_WORD.capitalize()}.") for recs in loaded.examples.values() for r in recs][:48]
    cfg = loaded.spec.defaults.train.model_copy(update={"epochs": 2, "replay": 0.0})
    t0 = time.perf_counter()
    stage = train_stage(loaded.spec.model.base, None, examples, loaded.spec.model.lora, cfg, tmp / "biased", progress=False)
    choice_nodes = [n for n, s in loaded.spec.nodes.items() if s.probes and all(p.kind != "paraphrase" for p in s.probes)]
    results = Prober(loaded.spec.model.base).probe(loaded, stage.adapter_dir, {n: None for n in choice_nodes})
    items = [r for n in choice_nodes for r in results[n]]
    raw = sum(bool(r.raw_correct) for r in items) / len(items)
    cal = sum(bool(r.calibrated_correct) for r in items) / len(items)
    offered = [r for r in items if any(o["text"] == BIAS_WORD for o in r.options)]
    raw_picks = sum(max(r.options, key=lambda o: o["logprob"] / max(o["tokens"], 1))["text"] == BIAS_WORD
                    for r in offered) / len(offered)
    cal_picks = sum(max(r.options, key=lambda o: o["logprob"] - o["prior_logprob"])["text"] == BIAS_WORD
                    for r in offered) / len(offered)
    chance = sum(1 / len(r.options) for r in items) / len(items)
    share = sum(r.reference == BIAS_WORD for r in items) / len(items)
    print(f"biased model ({BIAS_WORD} to anything, {time.perf_counter() - t0:.0f} s): {len(items)} items of {len(choice_nodes)} "
          f"choice nodes; raw {raw:.3f}, calibrated {cal:.3f}, chance {chance:.3f}; '{BIAS_WORD}' is the answer of "
          f"{share:.3f} of items; where it is offered ({len(offered)} items) raw picks it {raw_picks:.3f}, calibrated {cal_picks:.3f}")
    return {"biased_model_raw_acc": round(raw, 4), "biased_model_calibrated_acc": round(cal, 4), "chance": round(chance, 4),
            "biased_word_answer_share": round(share, 4), "biased_items": len(items),
            "biased_word_raw_pick_rate": round(raw_picks, 4), "biased_word_calibrated_pick_rate": round(cal_picks, 4)}


def null_stages(tmp: Path, profile: str = "demo", rounds: int = 6) -> dict:
    """A zero-effect adapter (lr 0) probed as a run probes its stages: every paired forgetting test that fires."""
    from curriculum.training.train import train_stage
    from probes.prober import Prober

    loaded = load_curriculum(BUNDLED, profile)
    nodes = [n for n in loaded.spec.nodes if any(loaded.probe_items[n])]
    cfg = loaded.spec.defaults.train.model_copy(update={"epochs": 1, "lr": 0.0, "replay": 0.0})
    stage = train_stage(loaded.spec.model.base, None, [Example("Hello.", "Hello.")], loaded.spec.model.lora, cfg,
                        tmp / "null", progress=False)
    prober = Prober(loaded.spec.model.base)

    def observed(results) -> dict[str, Evidence]:
        return {n: evidence_of(rs, len(pool_keys(loaded, n))) for n, rs in results.items() if rs}

    mastered = observed(prober.probe(loaded, None, {n: None for n in nodes}))  # every node "mastered" on all its items
    tests = alarms = rehearsals = 0
    for s in range(1, rounds + 1):
        trained = nodes[(s - 1) % len(nodes)]
        plan = {trained: first_items(loaded, trained)}
        plan |= {m: regression_items(loaded, m, sorted(mastered[m].items), s) for m in nodes if m != trained}
        now = observed(prober.probe(loaded, stage.adapter_dir, plan))
        for m, ev in now.items():
            if m == trained:
                continue
            drop = paired_drop(mastered[m], ev)
            tests += 1
            conf = loaded.spec.gate_config(m).confidence
            if drop.significant(conf):
                alarms += 1
                rehearsals += drop.after < numeric_gate(loaded, m, mastered[m].score)
    print(f"null stages: {rounds} stages, {tests} paired forgetting tests, {alarms} significant, {rehearsals} rehearsals")
    return {"null_stage_false_alarms": rehearsals, "null_stage_significant_drops": alarms, "null_stage_tests": tests}


def split_half(db: Path, run_id: str, profile: str = "demo") -> dict:
    """Each node's gate call on the even and on the odd items of its draw order, at every adapter of the run."""
    from probes.prober import Prober
    from warehouse.db import Warehouse

    wh = Warehouse(db)
    _, adapters = wh.query("SELECT stage, adapter_path FROM stages WHERE run_id = ? AND status = 'done' ORDER BY stage", [run_id])
    _, gates = wh.query("SELECT node_id, arg_max(gate, stage) FROM node_scores WHERE run_id = ? GROUP BY 1", [run_id])
    gate_of = dict(gates)
    loaded = load_curriculum(BUNDLED, profile)
    nodes = [n for n in loaded.spec.nodes if any(loaded.probe_items[n]) and n in gate_of]
    prober = Prober(loaded.spec.model.base)
    agree = total = 0
    for _stage, path in [(0, None), *adapters]:
        results = prober.probe(loaded, Path(path) if path else None, {n: None for n in nodes})
        for n in nodes:
            rows = {(r.probe_index, r.item): (r.probe_index, r.item, r.probe_kind, r.score) for r in results[n]}
            order = [k for k in pool_keys(loaded, n) if k in rows]
            halves = [[rows[k] for k in order[h::2]] for h in (0, 1)]
            conf = loaded.spec.gate_config(n).confidence
            calls = [gate_call(evidence_from(h, len(h)), gate_of[n], conf).verdict for h in halves]
            agree += calls[0] == calls[1]
            total += 1
    print(f"split halves: {agree} of {total} gate calls agree over {len(adapters) + 1} adapters x {len(nodes)} nodes")
    return {"split_half_agreement": round(agree / total, 4), "split_half_calls": total}


def demo_run(tmp: Path) -> tuple[Path, str, Path]:
    from flows.curriculum_flow import curriculum

    db, runs = tmp / "signals.duckdb", tmp / "runs"
    run_id = curriculum(graph=str(BUNDLED), profile="demo", warehouse=str(db), runs_dir=str(runs), run_id="signals-demo")
    return db, run_id, runs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", help="a finished demo-profile run to read adapters from (default: run one)")
    ap.add_argument("--db", type=Path, help="its warehouse")
    ap.add_argument("--pairs-only", action="store_true")
    args = ap.parse_args()
    out: dict = {}
    out |= metric_pairs()
    out |= recite_passes()
    if args.pairs_only:
        print(json.dumps(out))
        return
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        out |= biased_model(tmp)
        out |= null_stages(tmp)
        if args.run:
            db, run_id = args.db, args.run
        else:
            db, run_id, _ = demo_run(tmp)
        out |= split_half(db, run_id)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
