"""The levels behind a suggested gate that need the probes' own scoring: how the data itself scores.

`curriculum calibrate` prints them and `gate: {min_score: auto}` uses them at the start of a run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from curriculum.loading.calibration import Levels, choice_levels
from curriculum.graph.spec import CONTINUOUS_PROBE_KINDS
from curriculum.loading.validate import LoadedCurriculum
from probes.kinds import item_facts
from probes.scoring import fact_recall, meaning
from probes.similarity import cosine_grid


def recite_level(loaded: LoadedCurriculum, node_id: str) -> float | None:
    """Mean over the node's paraphrase items of the best meaning score any of its training answers gets
    (the copy rule aside): the level reciting the data would reach if reciting were allowed."""
    answers = [r.value.answer for r in loaded.examples[node_id]]
    items = [rec.value for i, probe in enumerate(loaded.spec.nodes[node_id].probes) if probe.kind in CONTINUOUS_PROBE_KINDS
             for rec in loaded.probe_items[node_id][i]]
    if not items or not answers:
        return None
    grid = cosine_grid(answers, [it.all_references() for it in items])
    best = [max(meaning(sims[j], fact_recall(a, item_facts(it))) for j, a in enumerate(answers))
            for it, sims in zip(items, grid)]
    return math.fsum(best) / len(best)


def node_levels(loaded: LoadedCurriculum, node_id: str, base: float | None) -> Levels:
    """Chance and answer bias of its choice items, the data's own level on its paraphrase items, the base score."""
    probes = loaded.spec.nodes[node_id].probes
    choice = [r for i, p in enumerate(probes) if p.kind not in CONTINUOUS_PROBE_KINDS for r in loaded.probe_items[node_id][i]]
    items = sum(len(r) for r in loaded.probe_items[node_id])
    has_paraphrase = any(p.kind in CONTINUOUS_PROBE_KINDS for p in probes)
    chance, bias = choice_levels(choice) if choice and not has_paraphrase else (None, None)
    return Levels("paraphrase" if has_paraphrase else "choice", items, base=base, chance=chance, bias=bias,
                  recite=recite_level(loaded, node_id) if has_paraphrase else None)


def out_of_reach(loaded: LoadedCurriculum, nodes: Sequence[str], base: dict[str, float | None]) -> list[str]:
    """Written gates of paraphrase-only nodes above what the node's own training answers score: said at the
    start of a run, since such a gate is likely never held whatever the policy (a hand-written 0.5 often is,
    under key facts). A node with choice items too is left alone: those can score 1."""
    notes = []
    for n in nodes:
        written, probes = loaded.spec.gate_config(n).min_score, loaded.spec.nodes[n].probes
        if written == "auto" or not probes or any(p.kind not in CONTINUOUS_PROBE_KINDS for p in probes):
            continue
        levels = node_levels(loaded, n, base.get(n))
        if levels.recite is not None and written > levels.recite:
            notes.append(f"{n}: gate {written:.3f} is above {levels.recite:.3f}, what the node's own training answers "
                         f"score: likely out of reach (`min_score: auto` would be {levels.suggested_gate():.3f})")
    return notes


def calibrate(loaded: LoadedCurriculum) -> dict[str, Levels]:
    """Every schedulable node's levels, the base model probed on all its items (what `curriculum calibrate` prints)."""
    from curriculum.policies.draws import pool_keys
    from curriculum.models.tokens import token_plan
    from probes.prober import Prober
    from probes.results import evidence_of

    nodes = [n for n in loaded.spec.nodes if loaded.probe_items[n] and any(loaded.probe_items[n])]
    results = Prober(loaded.spec.model.base, token_plan(loaded.spec)).probe(loaded, None, {n: None for n in nodes})
    out = {}
    for n in nodes:
        ev = evidence_of(results[n], len(pool_keys(loaded, n)))
        out[n] = node_levels(loaded, n, ev.score if ev.n else None)
    return out
