"""lm-evaluation-harness tasks as probes: local JSONL multiple choice, or an installed task.

The live (adapter-wrapped) model goes into HFLM directly; `evaluator.evaluate` with a
TaskManager that skips the default index avoids simple_evaluate's fixed costs. Per-sample
logs become item rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from curriculum.jsonl import Record
from probes.kinds import choice_prompt
from probes.results import ItemResult


def _local_task(name: str, records: Sequence[Record[Any]], tokenizer) -> dict[str, Any]:
    """A multiple-choice task over the items, worded exactly as our own choice probe words them:
    the chat-formatted question as context, each option right after the assistant header."""
    rows = [{"line": r.line, "prompt": r.value.prompt, "choices": list(r.value.choices), "answer": r.value.answer}
            for r in records]

    def context(doc: dict[str, Any]) -> str:
        message = [{"role": "user", "content": choice_prompt(doc["prompt"], doc["choices"])}]
        return tokenizer.apply_chat_template(message, tokenize=False, add_generation_prompt=True)

    def dataset(**_: Any):
        from datasets import Dataset, DatasetDict

        return DatasetDict({"test": Dataset.from_list(rows)})

    return {
        "task": name, "custom_dataset": dataset, "test_split": "test", "output_type": "multiple_choice",
        "doc_to_text": context,
        "doc_to_choice": lambda doc: list(doc["choices"]),
        "doc_to_target": lambda doc: doc["answer"],
        "target_delimiter": "",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
    }


def run_lmeval(model, tokenizer, node_id: str, probe_index: int, *, task: str | None = None,
               records: Sequence[Record[Any]] = (), limit: int | None = None, batch_size: int = 16) -> list[ItemResult]:
    """Run one lm-eval task on the live model and return its samples as item results."""
    from lm_eval import evaluator
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager, get_task_dict

    was_training = model.training
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    if task is None:
        name = f"curriculum_{node_id}_{probe_index}".replace(".", "_").replace("-", "_")
        tasks = get_task_dict([_local_task(name, records, tokenizer)], TaskManager(include_defaults=False))
    else:
        name = task
        tasks = get_task_dict([task], TaskManager())
    out = evaluator.evaluate(lm, tasks, limit=limit, log_samples=True, verbosity="ERROR")
    model.train(was_training)
    results = []
    for sample in out["samples"][name]:
        doc = sample["doc"]
        picked = max(range(len(sample["filtered_resps"])), key=lambda i: sample["filtered_resps"][i][0])
        choices = doc.get("choices") or [str(c) for c in range(len(sample["filtered_resps"]))]
        target = sample["target"]
        correct = bool(sample["acc"])
        results.append(ItemResult(
            node_id, "lmeval", probe_index, int(doc.get("line", sample["doc_id"])), str(doc.get("prompt", sample.get("arguments", ""))),
            str(choices[picked]) if picked < len(choices) else str(picked),
            str(choices[target]) if isinstance(target, int) and target < len(choices) else str(target),
            score=float(correct), passed=correct, logprob=float(sample["filtered_resps"][picked][0]),
            tags={"task": name},
        ))
    return results
