"""The row formats fine-tuning tools use, as LLaMA-Factory and axolotl name them (pairs, chat `messages`, alpaca,
ShareGPT `conversations`): which one a row's columns hold, and a row as a `TrainExample` (its last user turn and the
answer to it; for a conversation the turns before and its system prompt). A new format goes here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from curriculum.graph.spec import DataFormat, DataSource, TrainExample

ROLES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant", "system": "system"}
# the format's own names of its parts: fields: {name: column} renames them
NAMES: dict[DataFormat, tuple[str, ...]] = {
    "pairs": ("prompt", "answer", "system"), "chat": ("messages", "system"),
    "alpaca": ("instruction", "input", "output", "system"), "sharegpt": ("conversations", "system"),
}


def format_of(columns: Iterable[str], fields: dict[str, str]) -> DataFormat | None:
    """The format whose parts the columns hold (after `fields`' renaming)."""
    have = set(columns) | {name for name, column in fields.items() if column in set(columns)}
    for fmt, needs in (("chat", {"messages"}), ("sharegpt", {"conversations"}), ("alpaca", {"instruction", "output"}),
                       ("pairs", {"prompt", "answer"})):
        if needs <= have:
            return fmt  # type: ignore[return-value]
    return None


def columns_of(fmt: DataFormat, fields: dict[str, str]) -> dict[str, str]:
    """TrainExample's field -> the column a row of this format holds it in."""
    own = {"pairs": {"prompt": "prompt", "answer": "answer"}, "alpaca": {"prompt": "instruction", "answer": "output"},
           "chat": {"prompt": "messages", "answer": "messages"},
           "sharegpt": {"prompt": "conversations", "answer": "conversations"}}[fmt]
    return {field: fields.get(name, name) for field, name in {**own, "system": "system"}.items()}


def to_example(values: dict[str, Any], fmt: DataFormat, source: DataSource) -> TrainExample:
    """One row as a training example; ValueError says what is wrong with it."""
    def get(name: str) -> Any:
        return values.get(source.fields.get(name, name))

    system = get("system") or source.system
    if fmt == "pairs":
        return TrainExample(prompt=get("prompt"), answer=get("answer"), system=system)
    if fmt == "alpaca":
        parts = [get("instruction"), get("input")]  # LLaMA-Factory's alpaca: the instruction, a newline, its input
        prompt = "\n".join(p for p in parts if p) if all(isinstance(p, str | None) for p in parts) else parts[0]
        return TrainExample(prompt=prompt, answer=get("output"), system=system)
    turns = get("messages" if fmt == "chat" else "conversations")
    role_key, text_key = ("role", "content") if fmt == "chat" else ("from", "value")
    if not isinstance(turns, list) or not turns:
        name = "messages" if fmt == "chat" else "conversations"
        raise ValueError(f"'{source.fields.get(name, name)}' must be a non-empty list of turns")
    messages = []
    for i, turn in enumerate(turns, start=1):
        if not isinstance(turn, dict) or ROLES.get(str(turn.get(role_key))) is None:
            raise ValueError(f"turn {i}: expected {{{role_key}: user|assistant|system, {text_key}: text}}"
                             + (f", got {role_key} '{turn.get(role_key)}'" if isinstance(turn, dict) else ""))
        text = turn.get(text_key)
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"turn {i}: empty or missing '{text_key}'")
        messages.append((ROLES[str(turn[role_key])], text))
    if messages[0][0] == "system":
        system = messages.pop(0)[1]
    roles = [role for role, _ in messages]
    if len(roles) < 2 or roles != ["user", "assistant"] * (len(roles) // 2):
        raise ValueError("turns must alternate user, assistant, ending with the assistant (a system turn only first): "
                         f"got {', '.join(roles)}")
    texts = [text for _, text in messages]
    return TrainExample(prompt=texts[-2], answer=texts[-1], system=system,
                        history=[(texts[i], texts[i + 1]) for i in range(0, len(texts) - 2, 2)])
