"""Chat formatting shared by training and probing, so both see exactly the same tokens."""

from __future__ import annotations

from dataclasses import dataclass

IGNORE = -100  # label of tokens that carry no loss (the prompt, the padding)


@dataclass(frozen=True)
class Example:
    """A chat pair, with where it came from so errors can point at it."""

    prompt: str
    answer: str
    source: str = "<memory>"  # file:line

    @property
    def file(self) -> str:
        return self.source.rsplit(":", 1)[0]

    @property
    def line(self) -> int:
        tail = self.source.rsplit(":", 1)
        return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else 1


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
