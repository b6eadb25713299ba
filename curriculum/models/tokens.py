"""Hyperwords as single tokens (seeds 000 and 003): one vocabulary row per hyperword, started
from the meaning of its parts, so "instead of ten tokens, one hyperword".

A plan is plain JSON ({"init", "lexicon": [{word, parts, gloss}]}): it travels to a remote
trainer as a parameter and is saved in every stage folder, so a stage reloads on its own.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import torch
from tokenizers import AddedToken

from curriculum.graph.spec import Curriculum

PLAN_FILE = "hyperwords.json"
Plan = dict[str, Any]


def token_plan(cur: Curriculum) -> Plan | None:
    """The curriculum's new-token plan, or None when it keeps the base vocabulary."""
    if cur.model.new_tokens is None or not cur.lexicon:
        return None
    return {"init": cur.model.new_tokens.init,
            "lexicon": [{"word": e.word, "parts": list(e.parts), "gloss": e.gloss} for e in cur.lexicon]}


def surface_forms(word: str) -> list[str]:
    """Each hyperword as it appears in running text: with or without a leading space, lower or capitalised.

    Byte-level tokenizers fold the preceding space into the next token, so ' word' must be its own
    entry for a mid-sentence hyperword to cost one token; all forms share the same initial row.
    """
    forms = [word, " " + word, word[:1].upper() + word[1:], " " + word[:1].upper() + word[1:]]
    return list(dict.fromkeys(forms))


def _pieces(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def token_problems(tokenizer, lexicon: list[dict[str, Any]]) -> list[tuple[tuple[Any, ...], str]]:
    """(YAML path, message) for each hyperword that cannot become a token or part that cannot be encoded."""
    problems: list[tuple[tuple[Any, ...], str]] = []
    vocab = tokenizer.get_vocab()
    special = set(tokenizer.all_special_ids)
    for i, entry in enumerate(lexicon):
        word = entry["word"]
        clash = next((f for f in surface_forms(word) if f in vocab or len(_pieces(tokenizer, f)) == 1), None)
        if clash is not None:
            problems.append((("lexicon", i, "word"), f"hyperword '{word}' clashes with an existing token "
                             f"{clash!r} of the tokenizer: pick a word it does not know"))
        for j, part in enumerate(entry["parts"]):
            ids = _pieces(tokenizer, " " + part.strip())
            unk = tokenizer.unk_token_id
            if not part.strip() or not ids or (unk is not None and unk in ids) or special & set(ids) \
                    or tokenizer.decode(ids) != " " + part.strip():
                problems.append((("lexicon", i, "parts", j), f"part {part!r} of '{word}' cannot be encoded by the "
                                 "tokenizer as plain text (empty, unknown or special pieces)"))
    return problems


def _part_rows(weight: torch.Tensor, tokenizer, texts: list[str]) -> torch.Tensor:
    """The mean over texts of each text's mean token row: every part counts once, however it splits."""
    return torch.stack([weight[_pieces(tokenizer, " " + t.strip())].mean(0) for t in texts]).mean(0)


def initial_row(weight: torch.Tensor, tokenizer, entry: dict[str, Any], init: str) -> torch.Tensor:
    """compositional: mean of the parts' rows; gloss: mean of the gloss's token rows; random: N(0, std)."""
    if init == "compositional":
        return _part_rows(weight, tokenizer, entry["parts"])
    if init == "gloss":
        return weight[_pieces(tokenizer, " " + entry["gloss"])].mean(0)
    gen = torch.Generator().manual_seed(zlib.crc32(entry["word"].encode()))  # the same row in every process
    return torch.randn(weight.shape[1], generator=gen).to(weight) * weight.float().std().to(weight)


def add_hyperwords(model, tokenizer, plan: Plan) -> list[int]:
    """Add every surface form of every hyperword as one token and initialise its rows; returns the new ids."""
    problems = token_problems(tokenizer, plan["lexicon"])
    if problems:
        raise ValueError("; ".join(message for _, message in problems))
    inputs = model.get_input_embeddings().weight.detach()
    rows = {e["word"]: initial_row(inputs, tokenizer, e, plan["init"]) for e in plan["lexicon"]}
    out_rows = {} if _tied(model) else {
        e["word"]: initial_row(model.get_output_embeddings().weight.detach(), tokenizer, e, plan["init"])
        for e in plan["lexicon"]}
    forms = [(e["word"], f) for e in plan["lexicon"] for f in surface_forms(e["word"])]
    add_forms(tokenizer, plan)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    ids = hyperword_ids(tokenizer, plan)
    with torch.no_grad():
        for (word, _), token_id in zip(forms, ids):
            model.get_input_embeddings().weight[token_id] = rows[word]
            if out_rows:
                model.get_output_embeddings().weight[token_id] = out_rows[word]
    return ids


def add_forms(tokenizer, plan: Plan) -> None:
    """Every surface form of every hyperword as one token of the tokenizer (its model rows are another matter)."""
    forms = [f for e in plan["lexicon"] for f in surface_forms(e["word"])]
    tokenizer.add_tokens([AddedToken(f, normalized=False, special=False) for f in forms])


def _tied(model) -> bool:
    """No separate output rows to set or train: none at all, or the input matrix shared."""
    outputs = model.get_output_embeddings()
    return outputs is None or outputs.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def hyperword_ids(tokenizer, plan: Plan) -> list[int]:
    """The ids of every surface form, in plan order (the trainable token indices of a stage)."""
    return tokenizer.convert_tokens_to_ids([f for e in plan["lexicon"] for f in surface_forms(e["word"])])


def trainable_token_indices(model, ids: list[int]) -> list[int] | dict[str, list[int]]:
    """peft's trainable_token_indices: the input rows (tied output rows follow), or both layers when untied."""
    if _tied(model):
        return ids
    names = {m: n.rsplit(".", 1)[-1] for n, m in model.named_modules()}
    return {names[model.get_input_embeddings()]: ids, names[model.get_output_embeddings()]: ids}


def save_plan(plan: Plan | None, folder: Path) -> None:
    if plan is not None:
        (Path(folder) / PLAN_FILE).write_text(json.dumps(plan, indent=2) + "\n")


def saved_plan(folder: Path | None) -> Plan | None:
    """The plan a stage was trained with, read from its folder."""
    path = Path(folder) / PLAN_FILE if folder else None
    return json.loads(path.read_text()) if path and path.exists() else None
