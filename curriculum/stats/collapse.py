"""A run that says one thing to every question: the check that keeps a comparison against it from passing as fair.

A plain fine-tune at a learning rate too high for its steps can end answering one option to every item; its score is
then the share of items that option happens to fit, and any arm that did not collapse "wins". Reading the end state's
answers (counted by `warehouse.records.end_state`) names such a run beside the verdict. It reads the verdict's items
after the run ends and steers nothing.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

ONE_ANSWER = 0.9  # a node's commonest output on at least this share of its verdict items ...
VARIED = 0.5  # ... where no expected answer is more than this share of them: the model says one thing to everything
ONE_ANSWER_MIN_ITEMS = 10  # below this, one answer to every item is too easily chance to name


def one_answer(end: dict[str, dict[str, Any]], targets: list[str]) -> dict[str, dict[str, Any]]:
    """The nodes on which a run gave one answer to nearly every verdict item although the expected answers vary:
    a collapsed model (a plain fine-tune at a learning rate too high for its steps does this), whose score is the
    share of items that one answer happens to fit. A difference against such a run says that the other arm did not
    collapse, not that its order taught more, so `compare` and the benchmarks name it beside the verdict.
    Each: the answer, its share and the node's n."""
    out: dict[str, dict[str, Any]] = {}
    for node in targets:
        entry = end.get(node) or {}
        answers, references = Counter(entry.get("answers") or {}), Counter(entry.get("references") or {})
        total = sum(answers.values())
        if total < ONE_ANSWER_MIN_ITEMS or not references:
            continue
        answer, count = answers.most_common(1)[0]
        if count / total >= ONE_ANSWER and references.most_common(1)[0][1] / total <= VARIED:
            out[node] = {"answer": answer, "share": round(count / total, 4), "n": total}
    return out


def one_answer_lines(rows: dict[str, list[dict[str, Any]]]) -> list[str]:
    """One line for each run that collapsed onto one answer somewhere (rows by arm), for the terminal and the page."""
    return [f"{arm}, {r['run_id']}: one answer to nearly every verdict item on "
            + ", ".join(f"{node} ('{v['answer']}' on {v['share']:.1%} of {v['n']})" for node, v in r["one_answer"].items())
            + " while the expected answers vary: a collapsed model, so a difference against it is not a fair comparison"
            for arm, runs in rows.items() for r in runs if r.get("one_answer")]
