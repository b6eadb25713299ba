"""Tokenized examples kept on disk, keyed by each example's content and the tokenizer that made them.

A node of 100,000 conversations is chat-templated and tokenized once: validation's length check, every stage that
trains or replays it and every resume read the ids back instead of tokenizing again. The key is the example's
own content (prompt, answer, system prompt, earlier turns), so an edited row is tokenized again and nothing else
is; the file is per tokenizer fingerprint (its vocabulary, added tokens and chat template), so another tokenizer
or a new hyperword form never reads ids it did not make. SQLite from the standard library, ids as raw int32
bytes: nothing is unpickled, and concurrent stages may share it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from curriculum.models.bases import cache_dir
from curriculum.models.chat import Example, example_ids

VERSION = "1"  # how ids and labels are made (curriculum.models.chat): a change there must bump it, so no stale label is read
log = logging.getLogger(__name__)
SETTING = "CURRICULUM_TOKEN_CACHE"  # 0: tokenize every time, keeping nothing; a folder: keep the cache there


def fingerprint(tokenizer) -> str:
    """What decides a tokenizer's ids: its serialized vocabulary and rules, added tokens and chat template."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    parts = [VERSION, backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items())),
             str(getattr(tokenizer, "chat_template", None)), json.dumps(sorted(map(str, tokenizer.added_tokens_encoder))),
             json.dumps(getattr(tokenizer, "special_tokens_map", {}), sort_keys=True, default=str)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def example_key(ex: Example) -> bytes:
    return hashlib.sha256(json.dumps([ex.prompt, ex.answer, ex.system, [list(t) for t in ex.history]]).encode()).digest()


@dataclass
class TokenCache:
    """One tokenizer's cache; `cached` and `computed` count what `ids` answered from disk and what it tokenized."""

    tokenizer: object
    folder: Path | None = None
    cached: int = 0
    computed: int = 0
    _path: Path | None = field(default=None, repr=False)

    @property
    def enabled(self) -> bool:
        return os.environ.get(SETTING, "") != "0"

    @property
    def path(self) -> Path:
        if self._path is None:
            where = self.folder or Path(os.environ.get(SETTING) or cache_dir() / "tokens")
            self._path = where / f"{fingerprint(self.tokenizer)}.sqlite"
        return self._path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=60)
        con.execute("CREATE TABLE IF NOT EXISTS tokens (key BLOB PRIMARY KEY, ids BLOB NOT NULL, labels BLOB NOT NULL)")
        return con

    def ids(self, examples: Sequence[Example]) -> list[tuple[list[int], list[int]]]:
        """Each example's (ids, labels), as curriculum.models.chat.example_ids gives them; ValueError as it raises."""
        if not self.enabled:
            self.computed += len(examples)
            return [example_ids(self.tokenizer, ex) for ex in examples]
        try:
            return self._through_cache(examples)
        except sqlite3.Error as exc:  # a cache that cannot be read or written (read-only, full, locked) is no cache
            log.warning("token cache %s unusable (%s): tokenizing without it", self.path, exc)
            self.computed += len(examples)
            return [example_ids(self.tokenizer, ex) for ex in examples]

    def _through_cache(self, examples: Sequence[Example]) -> list[tuple[list[int], list[int]]]:
        keys = [example_key(ex) for ex in examples]
        found: dict[bytes, tuple[list[int], list[int]]] = {}
        with self._connect() as con:
            unique = list(dict.fromkeys(keys))
            for at in range(0, len(unique), 500):  # SQLite's limit on bound parameters
                chunk = unique[at : at + 500]
                rows = con.execute(f"SELECT key, ids, labels FROM tokens WHERE key IN ({','.join('?' * len(chunk))})",
                                   chunk).fetchall()
                found.update((k, (_ints(i), _ints(lab))) for k, i, lab in rows)
            new = {}
            for key, ex in zip(keys, examples):
                if key not in found and key not in new:
                    new[key] = example_ids(self.tokenizer, ex)
            con.executemany("INSERT OR IGNORE INTO tokens VALUES (?, ?, ?)",
                            [(k, array("i", i).tobytes(), array("i", lab).tobytes()) for k, (i, lab) in new.items()])
        self.cached += sum(1 for k in keys if k in found)
        self.computed += sum(1 for k in keys if k not in found)
        found.update(new)
        return [found[k] for k in keys]


def _ints(blob: bytes) -> list[int]:
    out = array("i")
    out.frombytes(blob)
    return out.tolist()
