"""Chat formatting shared by training and probing, so both see exactly the same tokens."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

IGNORE = -100  # label of tokens that carry no loss (the prompt, the padding)


@dataclass(frozen=True)
class Example:
    """A chat pair, with where it came from so errors can point at it."""

    prompt: str
    answer: str
    source: str = "<memory>"  # file:line
    system: str | None = None
    history: tuple[tuple[str, str], ...] = ()  # earlier (user, assistant) turns of a conversation, trained too

    def messages(self) -> list[dict[str, str]]:
        """The whole exchange as chat messages."""
        head = [{"role": "system", "content": self.system}] if self.system is not None else []
        for user, assistant in self.history:
            head += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        return head + [{"role": "user", "content": self.prompt}, {"role": "assistant", "content": self.answer}]

    @property
    def file(self) -> str:
        return self.source.rsplit(":", 1)[0]

    @property
    def line(self) -> int:
        tail = self.source.rsplit(":", 1)
        return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else 1


def example_of(record: Any) -> Example:
    """A validated record (curriculum.loading.jsonl.Record of a TrainExample) as a chat example that remembers its
    file:line (a conversation with its earlier turns)."""
    value = record.value
    return Example(value.prompt, value.answer, record.where, value.system, tuple(tuple(turn) for turn in value.history))


class ExampleView(Sequence[Example]):
    """A node's examples read where its rows lie (datasources.NodeRows), one at a time: a replay draw or a mixture
    takes the few it needs without the node read whole. `fingerprint` names the rows, for a stage's inputs hash."""

    def __init__(self, records: Any) -> None:
        self.records, self.fingerprint = records, records.fingerprint

    def __len__(self) -> int:
        return len(self.records)

    @overload
    def __getitem__(self, i: int) -> Example: ...
    @overload
    def __getitem__(self, i: slice) -> list[Example]: ...
    def __getitem__(self, i: int | slice) -> Example | list[Example]:
        if isinstance(i, slice):
            return [example_of(r) for r in self.records[i]]
        return example_of(self.records[i])

    def __iter__(self) -> Iterator[Example]:
        return map(example_of, self.records)


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """The user turn plus the assistant header: what generation continues from."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def pair_ids(tokenizer, prompt: str, answer: str) -> tuple[list[int], list[int]]:
    """Token ids of a full exchange and labels that are IGNORE everywhere but the answer.

    The answer's closing end-of-turn token is learned too, so the model learns to stop.
    """
    head = prompt_ids(tokenizer, prompt)
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    full = tokenizer(text, add_special_tokens=False)["input_ids"]
    if full[: len(head)] != head:
        raise ValueError("the chat template renders the prompt differently with and without an answer")
    labels = [IGNORE] * len(head) + full[len(head):]
    return full, labels


def _render(tokenizer, messages: list[dict[str, str]], generation: bool) -> list[int]:
    from jinja2 import TemplateError

    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)
    except TemplateError as exc:  # e.g. a template that takes no system turn: the example's problem, said at its row
        raise ValueError(f"the chat template refuses this conversation: {exc}") from exc
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def example_ids(tokenizer, example: Example) -> tuple[list[int], list[int]]:
    """Token ids of an example and labels that are IGNORE everywhere but its assistant turns.

    A single pair is `pair_ids`. A conversation is rendered by the base model's chat template, and an assistant
    turn's tokens are what the template adds for it: the render up to that turn with the assistant header, then
    with the turn (so the system prompt, user turns and headers carry no loss, however the template writes them).
    Each render must start the next, or the template rewrites earlier turns and no mask can be read off it."""
    if example.system is None and not example.history:
        return pair_ids(tokenizer, example.prompt, example.answer)
    messages = example.messages()
    full = _render(tokenizer, messages, False)
    labels = [IGNORE] * len(full)
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        head, upto = _render(tokenizer, messages[:k], True), _render(tokenizer, messages[: k + 1], False)
        if full[: len(upto)] != upto or upto[: len(head)] != head:
            raise ValueError(f"the chat template renders turn {k + 1} differently once later turns follow")
        labels[len(head) : len(upto)] = full[len(head) : len(upto)]
    return full, labels
