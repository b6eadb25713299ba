"""Base models: the bundled SmolLM2 (GGUF converted once to a cached HF folder), a local
folder or hub id, and a tiny random Llama for tests.

Loading the GGUF dequantizes for ~15-20 s and the result refuses `save_pretrained`, so it is
converted once into safetensors under the cache; every later load takes a fraction of that.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedModel

from curriculum.models.bases import (  # noqa: F401 (re-exported: the names callers import from here)
    BUNDLED, CONVERTED_MARK, GGUF_FILE, GGUF_PACKAGE, TINY, ModelError, bundled_converted, bundled_gguf, cache_dir,
    chat_ready, resolve_base,
)
from curriculum.models.placement import CPU, Placement, resolve

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock so two processes never convert into the same folder at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_gguf(gguf: Path) -> tuple[PreTrainedModel, Any]:
    """The slow path: transformers dequantizes the GGUF (kept for the benchmark)."""
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32,
                                                 use_kernels=False)
    return model, tokenizer


def converted_bundled() -> Path:
    """The cached HF folder of the bundled model, converting it the first time."""
    target = cache_dir() / BUNDLED
    done = target / CONVERTED_MARK
    if bundled_converted():
        return target
    with _file_lock(cache_dir() / f"{BUNDLED}.lock"):
        if done.exists():  # another process converted while we waited
            return target
        gguf_model, tokenizer = load_gguf(bundled_gguf())
        config = gguf_model.config
        if hasattr(config, "quantization_config"):  # the weights are plain fp32 now
            del config.quantization_config
        plain: Any = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        plain.load_state_dict(gguf_model.state_dict())
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        plain.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        (staging / CONVERTED_MARK).write_text(f"{bundled_gguf()}\n")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    return target


def tiny_random(tokenizer, seed: int = 0) -> PreTrainedModel:
    """A 2-layer Llama over the real tokenizer: fast, deterministic, no download."""
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


@dataclass
class Loaded:
    model: PreTrainedModel
    tokenizer: Any  # a transformers tokenizer (their classes share no useful base type)
    placement: Placement = CPU  # where it was loaded: a stage trained on a lent base runs there too


def load_tokenizer(base: str):
    """The tokenizer of a base; 'tiny-random' borrows the bundled model's."""
    return chat_ready(AutoTokenizer.from_pretrained(_source(base)), base)


def _source(base: str) -> str:
    if base in (BUNDLED, TINY):
        return str(converted_bundled())
    return resolve_base(base).source  # a hub id not in the cache is the only case that may reach the network


def load_base(base: str, *, placement: Placement | None = None, tokens: dict[str, Any] | None = None) -> Loaded:
    """Resolve `model.base` from the YAML and load model + tokenizer where `placement` says (default: auto).

    With a token plan (curriculum.models.tokens) the hyperwords join the vocabulary as single tokens,
    their rows initialised the same way in every process, so saved stages fit onto it.
    """
    placement = placement or resolve()
    tokenizer = load_tokenizer(base)
    model: Any  # transformers types .to() as a method of every pretrained class, not of the instance
    if placement.quantize is not None:
        model = _load_4bit(_tiny_folder(tokenizer) if base == TINY else _source(base), placement)
    elif base == TINY:
        tiny: Any = tiny_random(tokenizer)
        model = tiny.to(placement.dtype)  # the same base whatever the training seed
    else:
        # use_kernels=False: transformers (which requires `kernels`) otherwise swaps in layers it downloads from the
        # hub (rotary, RMSNorm) whenever a model on CUDA changes mode (a stage's model.train()) or loads onto CUDA:
        # network at run time, and code nobody pinned
        model = AutoModelForCausalLM.from_pretrained(_source(base), dtype=placement.dtype, use_kernels=False)
    if tokens is not None:
        from curriculum.models.tokens import add_hyperwords

        add_hyperwords(model, tokenizer, tokens)
    return Loaded(model if placement.quantize else model.to(placement.device), tokenizer, placement)


def _tiny_folder(tokenizer) -> str:
    """The tiny random Llama saved once, for the loaders that only read folders (4-bit quantization)."""
    target = cache_dir() / f"{TINY}-folder"
    if not (target / "config.json").exists():
        with _file_lock(cache_dir() / f"{TINY}-folder.lock"):
            if not (target / "config.json").exists():
                staging = target.with_name(target.name + ".partial")
                tiny_random(tokenizer).save_pretrained(staging, safe_serialization=True)
                os.replace(staging, target)
    return str(target)


def _load_4bit(source: str, placement: Placement) -> PreTrainedModel:
    """QLoRA's base: NF4 weights computing in the placement's half precision, LoRA layers trained on top in fp32."""
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig

    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                bnb_4bit_compute_dtype=placement.dtype)
    model = AutoModelForCausalLM.from_pretrained(source, quantization_config=config, dtype=placement.dtype,
                                                 device_map={"": placement.device}, use_kernels=False)
    # norms in fp32 and inputs that carry gradients; no gradient checkpointing: stages are short, speed matters more
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
