"""lm-evaluation-harness tasks as probes, scored by lm-eval's own evaluator on the live model.

Three forms of `kind: lmeval`:
- `items:` a node's JSONL of choice items becomes a multiple-choice task built in code (`items_task`);
  the same config, written out with `task_yaml`, is a task YAML that lm-eval's own CLI reads;
- `task: some/task.yaml` a task YAML kept with the curriculum, its data local (`dataset_path: json`,
  `dataset_kwargs: {data_files: ...}` relative to the YAML);
- `task: name` an installed lm-eval task (its data must already be in the local datasets cache).
Contexts go through the tokenizer's chat template (`apply_chat_template`), as the product's own probes
see them. The score of an item is the task's first metric (acc, exact_match, ...); every metric of the
sample and, for choices, every option's log-likelihood travel with its row.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from curriculum.loading.jsonl import Record
from probes.results import ItemResult

# The product's choice question (probes.kinds.choice_prompt) as a Jinja template lm-eval renders.
CHOICE_TEXT = "{{prompt}}\nOptions:\n{% for c in choices %}- {{c}}\n{% endfor %}Answer with one option."
METRICS = [{"metric": m, "aggregation": "mean", "higher_is_better": True} for m in ("acc", "acc_norm")]


@dataclass(frozen=True)
class LmevalProbe:
    """One lmeval probe of one node, as a probe sweep asks for it."""

    node_id: str
    probe_index: int
    records: Sequence[Record[Any]] = ()  # the `items:` form: the selected items
    task: str | None = None  # the `task:` form: an installed task name or a task YAML's path
    docs: Sequence[int] | None = None  # the `task:` form: 0-based doc ids to score (None: all)


@lru_cache(maxsize=2)
def task_manager(installed: bool):
    """lm-eval's task index, built once per process: scanning the installed tasks takes seconds (14 s
    measured here), so it is built only when a probe names an installed task."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_defaults=installed)


def task_name(node_id: str, probe_index: int) -> str:
    return f"curriculum_{node_id}_{probe_index}".replace(".", "_").replace("-", "_")


def items_task(name: str, records: Sequence[Record[Any]] = (), data_file: str | Path | None = None) -> dict[str, Any]:
    """A multiple-choice task over choice items {prompt, choices, answer}, worded as our own choice probe
    words them: from the validated records in memory, or (`data_file`) from the JSONL itself."""
    config: dict[str, Any] = {
        "test_split": "test", "output_type": "multiple_choice",
        "doc_to_text": CHOICE_TEXT, "doc_to_choice": "choices", "doc_to_target": "answer",  # fields of the doc
        "metric_list": METRICS,
    }
    if data_file is not None:
        return {"task": name, "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data_file)}}, **config}
    rows = [{"line": r.line, "prompt": r.value.prompt, "choices": list(r.value.choices), "answer": r.value.answer}
            for r in records]

    def dataset(**_: Any):
        from datasets import Dataset, DatasetDict

        return DatasetDict({"test": Dataset.from_list(rows)})

    return {"task": name, **config, "custom_dataset": dataset}


def task_yaml(config: dict[str, Any]) -> str:
    """A task config as YAML for `lm_eval --tasks path.yaml` (configs with code in them cannot be written)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str):  # a template with newlines stays one readable line
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"' if "\n" in value else None)

    Dumper.add_representer(str, text)
    return yaml.dump(config, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=120)


def is_task_file(task: str) -> bool:
    return task.endswith((".yaml", ".yml"))


def _local_paths(files: Any, folder: Path) -> Any:
    """`data_files` (a path, a list, or split -> either) with relative paths read against the YAML's folder."""
    if isinstance(files, dict):
        return {k: _local_paths(v, folder) for k, v in files.items()}
    if isinstance(files, list):
        return [_local_paths(f, folder) for f in files]
    return str(folder / files) if isinstance(files, str) and not Path(files).is_absolute() else files


def file_task(path: Path) -> dict[str, Any]:
    """A task YAML kept with the curriculum, as a config whose local data paths are read from its folder."""
    from lm_eval.tasks._yaml_loader import load_yaml  # lm-eval's loader: `include:` and `!function` relative to the YAML

    config = load_yaml(path, resolve_func=True, recursive=True)
    if "task" not in config or not isinstance(config["task"], str):
        raise ValueError(f"{path}: a task YAML for a probe defines one task (a 'task: name' key)")
    kwargs = dict(config.get("dataset_kwargs") or {})
    if "data_files" in kwargs:
        kwargs["data_files"] = _local_paths(kwargs["data_files"], path.parent)
        config["dataset_kwargs"] = kwargs
    return config


def load_task(probe: LmevalProbe, folder: Path):
    """The lm-eval Task object of a probe, through the (cached) task index."""
    if probe.task is None:
        spec: Any = items_task(task_name(probe.node_id, probe.probe_index), probe.records)
        manager = task_manager(False)
    elif is_task_file(probe.task):
        spec, manager = file_task(folder / probe.task), task_manager(False)
    else:
        spec, manager = probe.task, task_manager(True)
        if spec not in manager.task_index:
            raise ValueError(f"unknown lm-eval task '{spec}' (not installed, and not a .yaml file)")
    tasks = manager.load([spec])["tasks"]
    if len(tasks) != 1:
        raise ValueError(f"lm-eval task '{probe.task}' is a group of {len(tasks)} tasks; a probe names one task")
    return next(iter(tasks.values()))


def run_lmeval(model, tokenizer, probes: Sequence[LmevalProbe], folder: Path = Path("."),
               batch_size: int = 16) -> list[ItemResult]:
    """Each probe's docs scored by `lm_eval.evaluator.evaluate` on the live model; one row per doc."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    from lm_eval import evaluator
    from lm_eval.models.huggingface import HFLM

    was_training = model.training
    model.eval()
    hf_log = logging.getLogger("lm_eval.models.huggingface")
    level = hf_log.level
    hf_log.setLevel(logging.ERROR)  # its warnings about a model passed as an object are the point here
    try:
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    finally:
        hf_log.setLevel(level)
    results: list[ItemResult] = []
    for probe in probes:
        task = load_task(probe, folder)
        name = task.task_name
        samples = None
        if probe.docs is not None:
            count = len(task.eval_docs)
            samples = {name: sorted({d for d in probe.docs if 0 <= d < count})}
            if not samples[name]:
                continue
        out = evaluator.evaluate(lm, {"tasks": {name: task}, "groups": {}, "group_map": {}}, samples=samples,
                                 log_samples=True, apply_chat_template=True, bootstrap_iters=0, verbosity="ERROR")
        results += sample_rows(probe, task, out["samples"][name])
    model.train(was_training)
    return results


def sample_rows(probe: LmevalProbe, task, samples: Sequence[dict[str, Any]]) -> list[ItemResult]:
    """lm-eval's per-sample logs as item rows: the first filter's sample of each doc, scored by the first metric."""
    by_line = {r.line: r for r in probe.records}
    rows, seen = [], set()
    for sample in samples:
        if sample["doc_id"] in seen:
            continue
        seen.add(sample["doc_id"])
        doc = sample["doc"]
        metrics = {m: float(sample[m]) for m in sample["metrics"] if isinstance(sample[m], (int, float, bool))}
        metric = next((m for m in sample["metrics"] if m in metrics), sample["metrics"][0])  # the first numeric one
        score = metrics.get(metric, 0.0)
        item = int(doc["line"]) if probe.task is None else sample["doc_id"] + 1
        target = sample["target"]
        tags: dict[str, Any] = {"task": task.task_name, "metrics": metrics}
        if probe.task is None and item in by_line:
            known = {"prompt", "choices", "answer"}
            tags |= {k: v for k, v in by_line[item].value.model_dump().items() if k not in known}
        common = dict(score=score, passed=score >= 0.5, tags=tags, scoring=metric)
        if task.OUTPUT_TYPE == "multiple_choice":
            choices = [str(c) for c in task.doc_to_choice(doc)]
            lls = [float(ll) for ll, _ in sample["filtered_resps"]]
            pick = max(range(len(lls)), key=lls.__getitem__)
            gold = target if isinstance(target, int) else choices.index(str(target)) if str(target) in choices else -1
            rows.append(ItemResult(
                probe.node_id, "lmeval", probe.probe_index, item, str(task.doc_to_text(doc)), choices[pick],
                choices[gold] if 0 <= gold < len(choices) else str(target), logprob=lls[pick],
                options=[{"text": c, "logprob": ll} for c, ll in zip(choices, lls)], raw_correct=pick == gold, **common,
            ))
        else:
            resp = sample["filtered_resps"][0]
            reference = str(target[0] if isinstance(target, list) and target else target)
            if task.OUTPUT_TYPE == "generate_until":
                output, logprob = str(resp), None
            else:  # loglikelihood: how likely the model finds the target itself
                output, logprob = reference, float(resp[0] if isinstance(resp, (tuple, list)) else resp)
            rows.append(ItemResult(probe.node_id, "lmeval", probe.probe_index, item, str(task.doc_to_text(doc)),
                                   output, reference, logprob=logprob, **common))
    return rows
