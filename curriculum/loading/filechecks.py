"""Every file the graph names: each node's data and probe items read and checked where they are, no probe item
leaking into training data, every example within its node's max_length as the base's tokenizer reads it; and the
lint that warns of probes too small to decide their gates.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any


from curriculum.graph import spec
from curriculum.models.bases import TOKENIZER_FILES, ModelError, Resolved, resolve_base, tokenizer_for_checks
from curriculum.loading.datasources import BATCH
from curriculum.loading.jsonl import Record
from curriculum.graph.problems import Problem, display_path
from curriculum.loading.taskcheck import installed_tasks, task_file_problems, unknown_task_message
from curriculum.loading.checker import Checker


def _normal(text: str) -> str:
    """Casefolded, single-spaced, without end punctuation: how a leak is recognised."""
    return " ".join(text.casefold().split()).rstrip(".!?;:")


def check_base(ck: Checker, top: spec.Curriculum) -> Resolved | None:
    """`model.base` resolves to files on this machine (or, online, to a hub id); cheap: nothing is loaded."""
    try:
        resolved = resolve_base(top.model.base)
    except ModelError as exc:
        ck.at(("model", "base"), f"model.base: {exc}")
        return None
    if not resolved.cached:
        line, col = ck.yml.where(("model", "base")) if ck.yml else (1, 1)
        ck.warnings.append(Problem(ck.file, line, col, f"warning: hub model '{resolved.source}' is not in the local "
                                   "cache, so its tokenizer is not checked here (prompt lengths); the run downloads it"))
        return None
    return resolved


@lru_cache(maxsize=8)
def _base_tokenizer(base: str, source: str, stamp: float):
    """The base's tokenizer, loaded once per process and folder state (validation runs again and again)."""
    import transformers

    transformers.logging.set_verbosity_error()
    return tokenizer_for_checks(base)


def tokenizer_of(ck: Checker, top: spec.Curriculum, resolved: Resolved):
    """The tokenizer training will use, hyperword tokens included; None (and a problem) when it cannot load."""
    source = Path(resolved.source)
    stamp = max((source / f).stat().st_mtime for f in TOKENIZER_FILES if (source / f).is_file()) \
        if source.is_dir() else 0.0
    try:
        tokenizer = _base_tokenizer(top.model.base, resolved.source, stamp)
    except Exception as exc:  # noqa: BLE001 (whatever a broken tokenizer folder raises, it is the user's to fix)
        ck.at(("model", "base"), f"model.base: cannot load the tokenizer of '{top.model.base}': {exc}")
        return None
    if top.model.new_tokens is None or not top.lexicon:
        return tokenizer
    from curriculum.models.tokens import add_forms, token_plan, token_problems  # imports torch: only for new tokens

    plan = token_plan(top)
    if plan is None:
        return tokenizer
    problems = token_problems(tokenizer, plan["lexicon"])
    for loc, message in problems:
        ck.at(loc, message)
    if problems:
        return None
    tokenizer = copy.deepcopy(tokenizer)
    add_forms(tokenizer, plan)
    return tokenizer


def check_lengths(ck: Checker, cur: spec.Curriculum, tokenizer,
                   examples: dict[str, Sequence[Record[spec.TrainExample]]]) -> None:
    """Every training pair fits its node's max_length, tokenized as training does (chat template, new tokens):
    a pair that does not would only fail when its stage trains. A node is read a batch at a time; what is held
    is one length pair per distinct example, under a digest of it."""
    from curriculum.models.chat import IGNORE, Example
    from curriculum.models.tokencache import TokenCache, example_key

    lengths: dict[bytes, tuple[int, int]] = {}
    reported: set[tuple[str, int]] = set()
    cache = TokenCache(tokenizer)  # what is tokenized here, every stage reads back

    def key_of(value: spec.TrainExample) -> tuple[bytes, Example]:  # the cache's own key: one per distinct example
        history = tuple((user, assistant) for user, assistant in value.history)
        example = Example(value.prompt, value.answer, system=value.system, history=history)
        return example_key(example), example

    for node_id, records in examples.items():
        limit = cur.train_config(node_id).max_length
        for start in range(0, len(records), BATCH):
            batch = [(rec, *key_of(rec.value)) for rec in records[start:start + BATCH]]
            fresh = {key: example for _, key, example in batch if key not in lengths}
            try:
                for key, (ids, labels) in zip(fresh, cache.ids(list(fresh.values()))):
                    lengths[key] = (len(ids), labels.count(IGNORE))
            except ValueError:  # one example the template cannot render: each is tokenized alone below, to say which
                pass
            for rec, key, example in batch:
                if key not in lengths:
                    try:
                        (ids, labels), = cache.ids([example])
                    except ValueError as exc:  # the chat template renders the prompt differently with an answer
                        ck.problems.append(rec.problem(f"cannot tokenize this example: {exc}"))
                        lengths[key] = (0, 0)
                        continue
                    lengths[key] = (len(ids), labels.count(IGNORE))
                total, prompt = lengths[key]
                if total <= limit or (rec.file, rec.line) in reported:
                    continue
                reported.add((rec.file, rec.line))
                what = (f"its prompt alone is {prompt} tokens" if prompt >= limit
                        else f"it is {total} tokens ({prompt} of them the prompt)")
                ck.problems.append(rec.problem(f"example too long: {what}, over max_length {limit} "
                                           f"of node '{node_id}' (chat-templated with the tokenizer of '{cur.model.base}')"))


def check_files(ck: Checker, parsed: dict[str, spec.Node]):
    examples: dict[str, Sequence[Record[spec.TrainExample]]] = {}
    items: dict[str, list[list[Record[Any]]]] = {}
    exams: dict[str, list[list[Record[Any]] | None]] = {}
    installed: list[tuple[tuple[Any, ...], str]] = []  # (where, name) of each probe naming an installed lm-eval task
    for node_id, node in parsed.items():
        examples[node_id] = ck.training(node, ("nodes", node_id, "data")) or []
        items[node_id], exams[node_id] = [], []
        for i, probe in enumerate(node.probes):
            got = None
            exams[node_id].append(None if probe.exam is None else ck.records(
                probe.exam, spec.ITEM_MODELS[probe.kind], ("nodes", node_id, "probes", i, "exam"), probe.fields) or [])
            if probe.items is not None:
                got = ck.records(probe.items, spec.ITEM_MODELS[probe.kind], ("nodes", node_id, "probes", i, "items"),
                                 probe.fields)
            elif probe.task is not None and probe.task.endswith((".yaml", ".yml")):
                target = (ck.path.parent / probe.task).resolve()
                if not target.is_file():
                    ck.at(("nodes", node_id, "probes", i, "task"),
                          f"task file '{probe.task}' not found (looked in {display_path(target.parent)})")
                else:  # what lm-eval will read of it: includes, data files, !function modules
                    ck.problems.extend(task_file_problems(target))
            elif probe.task is not None:
                installed.append((("nodes", node_id, "probes", i, "task"), probe.task))
            items[node_id].append(got or [])
    if installed and (known := installed_tasks()) is not None:  # the index takes seconds: only when a probe names one
        for loc, name in installed:
            if name not in known:
                ck.at(loc, unknown_task_message(name, list(known)))
    probed = [*items.values(), *([r for r in e if r is not None] for e in exams.values())]
    # what an item could leak as: only these texts of the training data are kept, a node streamed past them
    wanted = {_normal(text) for per_probe in probed for records in per_probe for rec in records
              for text in (rec.value.prompt, getattr(rec.value, "reference", None)) if text is not None}
    prompts: dict[str, Record[spec.TrainExample]] = {}
    answers: dict[str, Record[spec.TrainExample]] = {}
    for records in examples.values():
        for rec in records if wanted else ():
            turns = [*rec.value.history, (rec.value.prompt, rec.value.answer)]  # earlier turns are trained too
            for user, assistant in turns:
                if (p := _normal(user)) in wanted:
                    prompts.setdefault(p, rec)
                if (a := _normal(assistant)) in wanted:
                    answers.setdefault(a, rec)
    leaked: set[tuple[str, int]] = set()
    for per_probe in probed:
        for records in per_probe:
            for rec in records:
                if (rec.file, rec.line) in leaked:
                    continue
                hit = prompts.get(_normal(rec.value.prompt))
                what = "prompt"
                reference = getattr(rec.value, "reference", None)
                if hit is None and reference is not None:
                    hit, what = answers.get(_normal(reference)), "reference"
                if hit is not None:
                    leaked.add((rec.file, rec.line))
                    train = "answer" if what == "reference" else "prompt"
                    ck.problems.append(rec.problem(f"probe item leaks into training data: its {what} "
                                               f"is the training {train} at {hit.where}"))
    for node_id, exam_files in exams.items():  # an exam item that is also a check item would be read by decisions
        for check_records, exam in zip(items[node_id], exam_files):
            checked = {_normal(r.value.prompt): r for r in check_records}
            for rec in exam or []:
                if (same := checked.get(_normal(rec.value.prompt))) is not None:
                    ck.problems.append(rec.problem(f"exam item repeats the check item at "
                                               f"{same.where}: an exam item must be one no decision reads"))
    return examples, items, exams


TYPICAL_SPREAD = 0.15  # sd of paraphrase item scores (0.08-0.15 measured on the bundled demo run) assumed when judging whether a probe can decide its gate
DECISION_MARGIN = 0.1  # a pool must tell a node 0.1 above its gate from one 0.1 below


def lint(ck: Checker, cur: spec.Curriculum, items: dict[str, list[list[Record[Any]]]]) -> list[Problem]:
    """Warnings (exit 0) for signals too weak to trust: one answer for every choice item, too few items
    for the gate to be decided at its confidence."""
    from curriculum.loading.calibration import choice_levels
    from curriculum.stats.evidence import decidable, interval

    found: list[Problem] = []

    def warn(loc: tuple[Any, ...], message: str) -> None:
        line, col = ck.yml.where(loc) if ck.yml else (1, 1)
        found.append(Problem(ck.file, line, col, f"warning: {message}"))

    for node_id, node in cur.nodes.items():
        gate = cur.gate_config(node_id)
        binary: list[Record[Any]] = []
        continuous = 0
        for i, probe in enumerate(node.probes):
            records = items[node_id][i]
            if probe.kind in spec.CONTINUOUS_PROBE_KINDS:
                continuous += len(records)
                continue
            binary += records
            answers = {r.value.choices[r.value.answer].casefold() for r in records}
            if len(records) > 1 and len(answers) == 1:
                warn(("nodes", node_id, "probes", i, "items"),
                     f"every item of this {probe.kind} probe has the answer '{records[0].value.choices[records[0].value.answer]}':"
                     " a model leaning towards that word scores 1.0; spread the answers over several options")
        level = gate.min_score
        if binary and not continuous:
            if level == "auto":
                level = (choice_levels(binary)[0] + 1) / 2
            if not decidable(len(binary), level, gate.confidence):
                warn(("nodes", node_id, "probes"), f"{len(binary)} right/wrong items cannot decide gate {level:.2f} at "
                     f"{gate.confidence:.0%} confidence: every decision will fall back to the point estimate; add items")
        elif continuous:
            n = continuous + len(binary)
            low, _ = interval([0.5 - TYPICAL_SPREAD, 0.5 + TYPICAL_SPREAD] * (n // 2) + [0.5] * (n % 2), False, gate.confidence)
            if n < 2 or 0.5 - low > DECISION_MARGIN:
                warn(("nodes", node_id, "probes"), f"{n} paraphrase items cannot tell a score {DECISION_MARGIN} above the "
                     f"gate from one {DECISION_MARGIN} below at {gate.confidence:.0%} confidence (items typically spread "
                     f"±{TYPICAL_SPREAD}); add items")
    return found
