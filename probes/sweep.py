"""Probe any set of nodes in one pass: all generations batched together, all choices too.

After each stage the flow probes the trained node on a draw of its items and the mastered
nodes on a rotating sample (regression), so batching across nodes is what keeps the
O(stages x nodes) sweep cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from curriculum.stats.evidence import ItemKey
from curriculum.loading.exam import Split
from curriculum.loading.jsonl import Record
from curriculum.graph.spec import CHOICE_PROBE_KINDS, CONTINUOUS_PROBE_KINDS, LexiconEntry, ProbeSpec
from curriculum.loading.validate import LoadedCurriculum
from probes.kinds import NEUTRAL, asked_as, score_choices, score_paraphrases
from probes.lm import DECODING, choice_logprobs, greedy_answers
from probes.lmeval_bridge import LmevalProbe, run_lmeval
from probes.results import ItemResult

Selection = Mapping[str, Sequence[ItemKey] | None]  # node -> the items to probe (None: all of them)


def _chosen(records: list[Record[Any]], probe_index: int, keys: Sequence[ItemKey] | None) -> list[Record[Any]]:
    if keys is None:
        return records
    wanted = {line for i, line in keys if i == probe_index}
    return [r for r in records if r.line in wanted]


def _task_docs(spec: ProbeSpec, probe_index: int, keys: Sequence[ItemKey] | None) -> list[int] | None:
    """The 0-based docs of a `task:` probe a selection asks for: its items (doc d is item d+1), or when every
    item is asked, the first `sample` docs (all of them without `sample`)."""
    if keys is None:
        return None if spec.sample is None else list(range(spec.sample))
    return [line - 1 for i, line in keys if i == probe_index]


def probe_nodes(model, tokenizer, cur: LoadedCurriculum, selection: Selection,
                gates: Mapping[str, float] | None = None, exam: bool = False) -> dict[str, list[ItemResult]]:
    """The selected items of each node's probes, scored; lm-eval probes through lm-eval's evaluator.

    exam: score the nodes' exam items instead of their check items (a selection of exam items is all of them, and
    `task:` probes have none): only the verdict asks for these, never a decision (curriculum.loading.exam)."""
    was_training = model.training
    pool = cur.exam_items if exam else cur.probe_items
    model.eval()
    results: dict[str, list[ItemResult]] = {n: [] for n in selection}
    para: list[tuple[str, int, str, list[Record[Any]]]] = []
    choice: list[tuple[str, int, ProbeSpec, list[Record[Any]]]] = []
    lmeval: list[LmevalProbe] = []
    for node_id, keys in selection.items():
        for i, spec in enumerate(cur.spec.nodes[node_id].probes):
            records = _chosen(pool[node_id][i], i, keys) if pool.get(node_id) else []
            if exam and not records:
                continue
            if spec.kind in CONTINUOUS_PROBE_KINDS:
                para.append((node_id, i, spec.kind, records))
            elif spec.kind in CHOICE_PROBE_KINDS:
                choice.append((node_id, i, spec, records))
            elif spec.task is None:
                if records:
                    lmeval.append(LmevalProbe(node_id, i, records=records))
            elif (docs := _task_docs(spec, i, keys)) is None or docs:
                lmeval.append(LmevalProbe(node_id, i, task=spec.task, docs=docs))
    for row in run_lmeval(model, tokenizer, lmeval, cur.path.parent) if lmeval else []:
        results[row.node_id].append(row)
    prompts = [r.value.prompt for *_, recs in para for r in recs]
    answers = greedy_answers(model, tokenizer, prompts, DECODING["max_new_tokens"])
    # the reference's own likelihood: a second, generation-free signal of whether the meaning was learned
    ref_scored = choice_logprobs(model, tokenizer, [(r.value.prompt, [r.value.reference]) for *_, recs in para for r in recs])
    ref_lps = [total / max(n, 1) for (total, n), in ref_scored]
    at = 0
    for node_id, i, kind, records in para:
        outputs, lps, at = answers[at : at + len(records)], ref_lps[at : at + len(records)], at + len(records)
        train = [r.value.answer for r in cur.examples[node_id]]
        gate = (gates or {}).get(node_id, _numeric_gate(cur, node_id))
        results[node_id] += score_paraphrases(node_id, i, records, outputs, train, gate, lps, kind=kind)
    asked = [(spec.options, r) for _, _, spec, records in choice for r in records]
    questions = [(asked_as(options, r.value.prompt, r.value.choices), r.value.choices) for options, r in asked]
    # one content-free question per option set and way of asking
    neutral = list(dict.fromkeys((options, tuple(r.value.choices)) for options, r in asked))
    scored = choice_logprobs(model, tokenizer, questions + [(asked_as(o, NEUTRAL, c), c) for o, c in neutral])
    prior = dict(zip(neutral, scored[len(questions):]))
    at = 0
    for node_id, i, spec, records in choice:
        per_item, at = scored[at : at + len(records)], at + len(records)
        priors = [prior[(spec.options, tuple(r.value.choices))] for r in records]
        results[node_id] += score_choices(node_id, i, spec.kind, records, per_item, priors, spec.scoring)
    model.train(was_training)
    by_word = {e.word.casefold(): e for e in cur.spec.lexicon}
    for node_id, rs in results.items():
        side = Split.EXAM if exam else Split.UNSPLIT if node_id in cur.unsplit else Split.CHECK
        for r in rs:
            r.tags = {**lexicon_tags(by_word, r), **r.tags}  # the item's own tags win
            r.split = side.value
    return results


def _numeric_gate(cur: LoadedCurriculum, node_id: str) -> float:
    value = cur.spec.gate_config(node_id).min_score
    return 0.5 if value == "auto" else value


def lexicon_tags(by_word: dict[str, LexiconEntry], result: ItemResult) -> dict[str, str]:
    """The tags (hyperword, mode, context) of the hyperword an item is about, so results split by them.

    The item is about the hyperword its expected answer names (choice items), else the first one its prompt names.
    """
    if not by_word:
        return {}
    entry = by_word.get(result.reference.casefold())
    if entry is None:
        prompt = result.prompt.casefold()
        found = [(prompt.find(w), e) for w, e in by_word.items() if w in prompt]
        entry = min(found, key=lambda f: f[0])[1] if found else None
    return entry.tags() if entry else {}
