"""Probe any set of nodes in one pass: all generations batched together, all choices too.

After each stage the flow probes the trained node on every item and the mastered nodes
on their fixed small sample (regression), so batching across nodes is what keeps the
O(stages x nodes) sweep cheap.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from curriculum.jsonl import Record
from curriculum.spec import LexiconEntry
from curriculum.validate import LoadedCurriculum
from probes.kinds import choice_prompt, score_choices, score_paraphrases
from probes.lm import choice_logprobs, greedy_answers
from probes.lmeval_bridge import run_lmeval
from probes.results import ItemResult

MAX_NEW_TOKENS = 48


def probe_nodes(model, tokenizer, cur: LoadedCurriculum, node_ids: Iterable[str], *,
                sampled: Iterable[str] = (), max_new_tokens: int = MAX_NEW_TOKENS) -> dict[str, list[ItemResult]]:
    """Every item of each node's probes (only `sample` items for nodes in `sampled`)."""
    was_training = model.training
    model.eval()
    node_ids, sampled = list(node_ids), set(sampled)
    results: dict[str, list[ItemResult]] = {n: [] for n in node_ids}
    para: list[tuple[str, int, list[Record[Any]]]] = []
    choice: list[tuple[str, int, str, list[Record[Any]]]] = []
    for node_id in node_ids:
        for i, spec in enumerate(cur.spec.nodes[node_id].probes):
            records = cur.probe_items[node_id][i]
            if node_id in sampled and spec.sample:
                records = records[: spec.sample]
            if spec.kind == "paraphrase":
                para.append((node_id, i, records))
            elif spec.kind == "transfer" or spec.task is None:
                choice.append((node_id, i, spec.kind, records))
            else:
                limit = spec.sample if node_id in sampled else None
                results[node_id] += run_lmeval(model, tokenizer, node_id, i, task=spec.task, limit=limit)
    answers = greedy_answers(model, tokenizer, [r.value.prompt for _, _, recs in para for r in recs], max_new_tokens)
    at = 0
    for node_id, i, records in para:
        outputs, at = answers[at : at + len(records)], at + len(records)
        train = [r.value.answer for r in cur.examples[node_id]]
        gate = cur.spec.gate_config(node_id).min_score
        results[node_id] += score_paraphrases(node_id, i, records, outputs, train, gate)
    questions = [(choice_prompt(r.value.prompt, r.value.choices), r.value.choices)
                 for _, _, _, recs in choice for r in recs]
    scored = choice_logprobs(model, tokenizer, questions)
    at = 0
    for node_id, i, kind, records in choice:
        per_item, at = scored[at : at + len(records)], at + len(records)
        results[node_id] += score_choices(node_id, i, kind, records, per_item)
    model.train(was_training)
    by_word = {e.word.casefold(): e for e in cur.spec.lexicon}
    for rs in results.values():
        for r in rs:
            r.tags = {**lexicon_tags(by_word, r), **r.tags}  # the item's own tags win
    return results


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
