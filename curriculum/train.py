"""One curriculum stage: a LoRA fine-tune on a node's chat pairs, continuing from the parent.

`train_stage` is a pure function of (base, parent adapter, examples, LoRA and train config)
-> (adapter directory, metrics): nothing global is read or written, so a stage can run in
another process or on another machine.

Why one long file: the stage is one transaction, from loading the base to the atomic save of its
adapter and stage.json; the rounds, the out-of-memory halving and the save share its state (the
model, the optimizer, the best round's weights), and the helpers that read a saved stage back
(finished_stage, stage_inputs, stage_owner) must agree with what the save writes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import shutil
import time
import warnings
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel, get_peft_model
from transformers import get_cosine_schedule_with_warmup

from curriculum import memory
from curriculum.chat import IGNORE, Example, ExampleView, example_ids, example_of
from curriculum.tokencache import TokenCache
from curriculum.diskspace import adapter_bytes, ensure_room
from curriculum.integrity import seal
from curriculum.models import Loaded, load_base
from curriculum.placement import Placement
from curriculum.problems import CurriculumError, Problem
from curriculum.sizing import Check, best_check, round_length, stop_reason
from curriculum.spec import LoraConfig, TrainConfig
from curriculum.stagespec import StageSpec
from curriculum.tokens import Plan, hyperword_ids, save_plan, trainable_token_indices

if TYPE_CHECKING:
    from accelerate import Accelerator

# peft still calls a transformers method deprecated in v5; the warning is theirs and fills every stage's log
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

ADAPTER_FILE = "adapter_model.safetensors"
STAGE_FILE = "stage.json"
on_save: Callable[[Path], None] | None = None  # called with the half-written folder: the flow's fault tests break it


@dataclass
class StepLog:
    step: int
    loss: float
    lr: float
    tokens: int
    seconds: float


@dataclass
class StageResult:
    adapter_dir: Path
    steps: int
    tokens: int  # non-padding tokens seen, prompt included
    seconds: float
    device: str
    train_loss: float  # token-weighted mean loss of the last epoch
    log: list[StepLog] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)  # one per round, when the stage was sized by a check
    stop_reason: str | None = None  # gate-met | plateau | budget (None: a fixed length, no check)
    check_seconds: float = 0.0  # of `seconds`, the time spent in checks (probing, not training)
    dtype: str = "float32"
    quantize: str | None = None
    micro_batch: int = 0  # examples per forward pass it ended with (below batch_size after an out-of-memory)
    grad_accum: int = 0  # forward passes per optimizer step it ended with (same examples per step as configured)
    ooms: int = 0  # out-of-memory errors recovered by halving the micro-batch
    phases: dict[str, float] = field(default_factory=dict)  # wall seconds: load, tokenize, train, check, save
    processes: int = 1  # trained together through Accelerate (curriculum.launch), each on its share of every step
    tokenized: dict[str, int] = field(default_factory=dict)  # examples read from the token cache / tokenized anew

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Tokenized:
    """An example's token ids and labels, as int32 arrays: a node of 100,000 conversations holds a fifth of the
    memory Python lists of ints would."""

    ids: Sequence[int]
    labels: Sequence[int]

    @property
    def answer_tokens(self) -> int:
        return sum(label != IGNORE for label in self.labels)


TOKENIZE_CHUNK = 1024


def tokenize_examples(tokenizer, examples: Sequence[Example], max_length: int,
                      cache: TokenCache | None = None) -> list[Tokenized]:
    """Tokenize every example (read back from `cache` when it holds it); one problem per example that is too long,
    naming its file:line."""
    out, problems = [], []
    usable = [ex for ex in examples if ex.prompt.strip() and ex.answer.strip()]
    encoded = (pair for at in range(0, len(usable), TOKENIZE_CHUNK)  # a chunk at a time: the lists of a whole
               for pair in (cache.ids(usable[at:at + TOKENIZE_CHUNK]) if cache is not None  # node never held at once
                            else [example_ids(tokenizer, ex) for ex in usable[at:at + TOKENIZE_CHUNK]]))
    for ex in examples:
        if not ex.prompt.strip() or not ex.answer.strip():
            problems.append(Problem(ex.file, ex.line, 1, "empty prompt or answer"))
            continue
        ids, labels = next(encoded)
        if len(ids) > max_length:
            problems.append(Problem(ex.file, ex.line, 1, f"example is {len(ids)} tokens, longer than max_length {max_length}"))
            continue
        out.append(Tokenized(array("i", ids), array("i", labels)))
    if problems:
        raise CurriculumError(problems)
    return out


def length_grouped_batches(items: Sequence[Tokenized], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffle, then sort within mega-batches by length so each batch pads little."""
    order = list(range(len(items)))
    rng.shuffle(order)
    mega = batch_size * 16
    batches: list[list[int]] = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start : start + mega], key=lambda i: -len(items[i].ids))
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def collate(items: Sequence[Tokenized], pad_id: int, device: str) -> dict[str, torch.Tensor]:
    """Right-pad to the longest item of the batch, not to max_length."""
    width = max(len(it.ids) for it in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, it in enumerate(items):
        n = len(it.ids)
        ids[row, :n] = torch.tensor(it.ids)
        labels[row, :n] = torch.tensor(it.labels)
        mask[row, :n] = 1
    return {"input_ids": ids.to(device), "labels": labels.to(device), "attention_mask": mask.to(device)}


def summed_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum of answer-token cross-entropies (callers divide by the window's answer tokens).

    The vocabulary projection runs only from the first answer token of the batch on: the
    prompt's logits carry no loss, and with a 49k vocabulary they cost a fifth of the step.
    """
    labels = batch["labels"]
    first = int((labels != IGNORE).int().argmax(dim=1).min())
    keep = torch.arange(max(first - 1, 0), labels.size(1) - 1, device=labels.device)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=keep).logits
    logits = logits.float()
    targets = labels[:, keep + 1]
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE, reduction="sum")


@torch.no_grad()
def mean_loss(model, items: Sequence[Tokenized], pad_id: int, device: str, batch_size: int = 16) -> float:
    """Token-weighted loss over items in eval mode (no dropout)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        total += summed_loss(model, collate(chunk, pad_id, device)).item()
        count += sum(it.answer_tokens for it in chunk)
    model.train(was_training)
    return total / max(count, 1)


def with_replay(examples: Sequence[Example], pools: Sequence[Sequence[Example]], fraction: float,
                seed: int, at_least: int = 0) -> list[Example]:
    """The node's examples plus about fraction * n earlier ones, drawn per mastered node (one pool each):
    every mastered node gets at least one example, so replay does not thin out as the graph grows.
    at_least: `replay_each`, a floor per held node, so a node of 8 examples is not down to one a stage when the
    trained node is small or many nodes are held."""
    pools = [p for p in pools if len(p)]  # a view stays one: rng.sample reads only the rows it draws
    if not (fraction or at_least) or not pools:
        return list(examples)
    each = max(1 if fraction else 0, round(fraction * len(examples) / len(pools)), at_least)
    rng = random.Random(seed)
    return list(examples) + [ex for pool in pools for ex in rng.sample(pool, min(each, len(pool)))]


def attach_lora(model, parent_adapter: Path | None, lora: LoraConfig, token_ids: Sequence[int] = ()):
    """A fresh adapter, or the parent's loaded trainable so the stage continues it.

    token_ids: rows of new hyperword tokens trained with the stage (peft's trainable tokens:
    only those rows, not the whole embedding matrix, are trained and saved).
    """
    if parent_adapter is not None:
        return PeftModel.from_pretrained(model, str(parent_adapter), is_trainable=True)
    config = PeftLoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,  # type: ignore[arg-type]  # peft says int; it divides
        target_modules=lora.target_modules, task_type="CAUSAL_LM",
        trainable_token_indices=trainable_token_indices(model, list(token_ids)) if token_ids else None,
    )
    return get_peft_model(model, config)


_LAYER = re.compile(r"\.layers\.(\d+)\.")


def freeze_lower(model, share: float) -> int:
    """Stop training the adapter's weights in the lowest `share` of the model's layers (a continued adapter keeps
    what the earlier stages put there). Why: sequential fine-tuning forgets mostly through the lower layers'
    alignment being overwritten, and freezing them retains far more (Zheng et al., "Spurious Forgetting in
    Continual Learning of Language Models", ICLR 2025). New-token rows are not in a layer and go on training.
    Returns how many layers were frozen."""
    if share <= 0:
        return 0
    layers = int(getattr(model.get_base_model().config, "num_hidden_layers", 0) or 0)
    frozen = math.floor(share * layers)
    for name, param in model.named_parameters():
        if param.requires_grad and (m := _LAYER.search(name)) and int(m.group(1)) < frozen:
            param.requires_grad_(False)
    return frozen


def _progress(total: int, enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("stage"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]:.3f}"),
        TextColumn("{task.fields[tps]:.0f} tok/s"), TimeRemainingColumn(), disable=not enabled, transient=True,
    )


def _windows(items: Sequence[Tokenized], cfg: TrainConfig, rng: random.Random) -> Iterator[tuple[int, list[list[int]]]]:
    """(epoch, window of grad_accum batches), epoch after epoch, each epoch reshuffled."""
    epoch = 0
    while True:
        batches = length_grouped_batches(items, cfg.batch_size, rng)
        for start in range(0, len(batches), cfg.grad_accum):
            yield epoch, batches[start : start + cfg.grad_accum]
        epoch += 1


def _accumulate(model, batches: Sequence[Sequence[Tokenized]], micro: int, answer_tokens: int, pad_id: int,
                placement: Placement, scaler: torch.amp.GradScaler | None) -> tuple[float, int]:
    """Forward and backward over one optimizer step's batches, `micro` examples at a time: every micro-batch's
    summed loss is divided by the whole window's answer tokens, so the gradient is the same however it is cut."""
    total, tokens = torch.zeros((), device=placement.device), 0
    for batch in batches:
        for start in range(0, len(batch), micro):
            chunk = batch[start : start + micro]
            memory.pressure(len(chunk))
            inputs = collate(chunk, pad_id, placement.device)
            with placement.autocast():
                loss = summed_loss(model, inputs) / answer_tokens
            (scaler.scale(loss) if scaler is not None else loss).backward()
            total += loss.detach().float()
            tokens += sum(len(it.ids) for it in chunk)  # the mask's ones, without waiting for the device
    return total.item(), tokens


def shard(batches: Sequence[Sequence[Tokenized]], index: int, count: int) -> list[list[Tokenized]]:
    """Process `index` of `count`'s part of one optimizer step's batches: every count-th example of each batch, so
    the processes together see exactly the examples one process would, and each batch stays length-grouped."""
    return [list(batch[index::count]) for batch in batches]


def _accumulate_shard(accelerator: Accelerator, model, batches: Sequence[Sequence[Tokenized]], micro: int, answer_tokens: int,
                      pad_id: int, placement: Placement, scaler: torch.amp.GradScaler | None) -> tuple[float, int]:
    """`_accumulate` for one of several processes: this process's share of the step, the gradients all-reduced by
    DDP once, on the last micro-batch (no_sync before it), whatever number of micro-batches each process has.

    DDP averages gradients over processes while every share is divided by the whole window's answer tokens, so each
    loss is multiplied by the number of processes: the step's gradient is the one a single process computes. A
    process whose share is empty (a last batch smaller than the processes) runs a forward of weight 0, so it still
    joins the all-reduce. Returns the step's loss and tokens summed over all processes (the same on every one).
    """
    count = accelerator.num_processes
    mine = shard(batches, accelerator.process_index, count)
    chunks = [batch[start : start + micro] for batch in mine for start in range(0, len(batch), micro)]
    weight = float(count)
    if not chunks:
        chunks, weight = [[batches[0][0]]], 0.0
    total, tokens = torch.zeros((), device=placement.device), 0
    for k, chunk in enumerate(chunks):
        memory.pressure(len(chunk))
        inputs = collate(chunk, pad_id, placement.device)
        with placement.autocast(), (accelerator.no_sync(model) if k < len(chunks) - 1 else nullcontext()):
            loss = summed_loss(model, inputs) * weight / answer_tokens
            accelerator.backward(scaler.scale(loss) if scaler is not None else loss)
        total += loss.detach().float() / count
        tokens += sum(len(it.ids) for it in chunk) if weight else 0
    step = accelerator.reduce(torch.stack([total, torch.tensor(float(tokens), device=total.device)]), reduction="sum")
    return step[0].item(), int(step[1].item())


class _Best:
    """The trainable weights of the best round so far, so a stage that ends past its best keeps the best."""

    def __init__(self) -> None:
        self.weights: dict[str, torch.Tensor] | None = None

    def keep(self, model) -> None:
        self.weights = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    def restore(self, model) -> None:
        with torch.no_grad():
            for n, p in model.named_parameters():
                if self.weights and n in self.weights:
                    p.copy_(self.weights[n])


CheckFn = Callable[[object, object], tuple[float, str, int]]  # (model, tokenizer) -> (score, verdict, n)


def train_stage(
    base: str,
    parent_adapter: Path | None,
    examples: Sequence[Example],
    lora: LoraConfig,
    cfg: TrainConfig,
    out_dir: Path,
    *,
    replay_pools: Sequence[Sequence[Example]] = (),
    progress: bool = True,
    placement: Placement | None = None,
    tokens: Plan | None = None,
    check: CheckFn | None = None,
    budget: int | None = None,
    meta: dict[str, str] | None = None,
    shared: Loaded | None = None,
    accelerator: Accelerator | None = None,
) -> StageResult:
    """Train one LoRA stage and save it (safetensors, PEFT format) atomically to out_dir.

    Without `check`, the stage is `epochs` epochs (or `budget` steps). With it, the stage trains in
    rounds (curriculum.sizing), calls check(model, tokenizer) after each, stops when the gate is met,
    at a plateau or when `budget` steps are spent, and keeps the best round's weights.
    tokens: a hyperword token plan (curriculum.tokens); the new rows train with the stage.
    meta: what the folder belongs to ({run_id, inputs}), kept in stage.json so a resume reuses only its own stage.
    placement: device and dtype (curriculum.placement; default auto); a shared base brings its own.
    shared: an already loaded base (the prober's, on a GPU: one copy in memory) to train on instead of loading
        one; its LoRA layers are taken out again after saving, so it comes back as it was lent.

    Out of memory, the step is run again with half the micro-batch and twice the accumulation (the same examples
    per optimizer step), down to one example, before the error reaches any retry; stage.json records what it ran with.
    accelerator: an accelerate.Accelerator of more than one process (curriculum.launch): the model is prepared (DDP,
        or what its config says), each process trains on its share of every step (`shard`), the logged loss and
        tokens are summed over the processes, and only the main process saves. Such a stage runs its fixed length:
        no `check`, no lent base, and out of memory is not halved (the processes would disagree on the step).
    """
    parallel = accelerator if accelerator is not None and accelerator.num_processes > 1 else None
    if parallel is not None and (check is not None or shared is not None):
        raise ValueError("a stage of several processes runs without a check and on its own base")
    torch.manual_seed(cfg.seed)
    clock = time.perf_counter()
    loaded = shared or load_base(base, placement=placement, tokens=tokens)
    tokenizer, where = loaded.tokenizer, loaded.placement
    loaded_at = time.perf_counter()
    mixed = with_replay(examples, replay_pools, cfg.replay, cfg.seed, cfg.replay_each)
    cache = TokenCache(tokenizer)  # validation, earlier stages and a killed run's stages tokenized most of these
    items = tokenize_examples(tokenizer, mixed, cfg.max_length, cache)
    tokenized_at = time.perf_counter()
    token_ids = hyperword_ids(tokenizer, tokens) if tokens else []
    model = attach_lora(loaded.model, parent_adapter, lora, token_ids)
    if parent_adapter is not None:
        freeze_lower(model, cfg.freeze_lower)
    model.train()
    if parallel is not None:  # before the optimizer: FSDP replaces the parameters it shards
        model = parallel.prepare(model)
    rng = random.Random(cfg.seed)
    per_epoch = math.ceil(math.ceil(len(items) / cfg.batch_size) / cfg.grad_accum)
    total_steps = budget if budget is not None else per_epoch * cfg.epochs
    every = round_length(len(items), cfg) if check is not None else total_steps
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = get_cosine_schedule_with_warmup(optimizer, math.ceil(cfg.warmup_ratio * total_steps), total_steps)
    scaler = torch.amp.GradScaler("cuda") if where.needs_grad_scaler else None
    micro, ooms = cfg.batch_size, 0
    log: list[StepLog] = []
    checks: list[Check] = []
    best, reason, check_s = _Best(), None, 0.0
    seen, step, epoch_loss, current = 0, 0, (0.0, 0), 0
    started = time.perf_counter()
    with _progress(total_steps, progress) as bar:
        task = bar.add_task("train", total=total_steps, loss=float("nan"), tps=0.0)
        for epoch, window in _windows(items, cfg, rng):
            if step >= total_steps:
                break
            if epoch != current:
                current, epoch_loss = epoch, (0.0, 0)
            answer_tokens = sum(items[i].answer_tokens for batch in window for i in batch)
            batches = [[items[i] for i in batch_idx] for batch_idx in window]
            while True:
                try:
                    if parallel is not None:
                        window_loss, window_tokens = _accumulate_shard(parallel, model, batches, micro, answer_tokens,
                                                                       tokenizer.pad_token_id, where, scaler)
                    else:
                        window_loss, window_tokens = _accumulate(model, batches, micro, answer_tokens,
                                                                 tokenizer.pad_token_id, where, scaler)
                    break
                except Exception as exc:
                    if not memory.is_oom(exc) or micro == 1 or parallel is not None:
                        raise
                optimizer.zero_grad(set_to_none=True)  # the failed attempt's partial gradients
                memory.free_memory()
                micro, ooms = memory.halved(micro), ooms + 1
            if scaler is not None:
                scaler.unscale_(optimizer)
            (parallel.clip_grad_norm_ if parallel is not None else torch.nn.utils.clip_grad_norm_)(params, 1.0)
            lr = schedule.get_last_lr()[0]
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            seen += window_tokens
            epoch_loss = (epoch_loss[0] + window_loss * answer_tokens, epoch_loss[1] + answer_tokens)
            log.append(StepLog(step, window_loss, lr, window_tokens, time.perf_counter() - started))
            bar.update(task, advance=1, loss=window_loss, tps=seen / (time.perf_counter() - started))
            if check is not None and (step % every == 0 or step >= total_steps):
                model.eval()
                check_started = time.perf_counter()
                score, verdict, n = check(model, tokenizer)
                check_s += time.perf_counter() - check_started
                model.train()
                checks.append(Check(len(checks) + 1, step, score, verdict, n))
                if best_check(checks) is checks[-1]:
                    best.keep(model)
                reason = stop_reason(checks, step, total_steps, cfg)
                if reason is not None:
                    break
    if checks and best_check(checks) is not checks[-1]:
        best.restore(model)
    seconds = time.perf_counter() - started
    phases = {"load": loaded_at - clock, "tokenize": tokenized_at - loaded_at, "train": started - tokenized_at + seconds
              - check_s, "check": check_s}  # train: from the adapter's attachment to the last step, checks excluded
    result = StageResult(out_dir, step, seen, seconds, where.device, epoch_loss[0] / max(epoch_loss[1], 1), log, checks,
                         reason if check is not None else None, check_s, where.dtype_name, where.quantize, micro,
                         cfg.grad_accum * math.ceil(cfg.batch_size / micro), ooms, phases,
                         parallel.num_processes if parallel is not None else 1,
                         {"cached": cache.cached, "computed": cache.computed})
    saving = time.perf_counter()
    state = None
    if parallel is not None:  # every process gives its part of the weights (FSDP gathers them); the main one saves
        parallel.wait_for_everyone()
        state = parallel.get_state_dict(model)
        model = parallel.unwrap_model(model)
    if parallel is None or parallel.is_main_process:
        _save(model, result, base=base, parent_adapter=parent_adapter, examples=mixed, lora=lora, cfg=cfg,
              token_plan=tokens, tokenizer=tokenizer, meta=meta or {}, state_dict=state)
    if parallel is not None:
        parallel.wait_for_everyone()  # the adapter is whole before any process reports the stage done
    phases["save"] = time.perf_counter() - saving  # not in stage.json: the record is part of what is timed
    if shared is not None:
        model.unload().eval()  # the lent base without this stage's LoRA layers
    return result


def _save(model, result: StageResult, **produced_by) -> None:
    """Write to a sibling folder and rename: a killed stage never leaves half an adapter."""
    out_dir = Path(result.adapter_dir)
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    ensure_room(out_dir.parent, adapter_bytes(model))  # a full disk: one clear ENOSPC before anything is written
    # trainable-token rows are in the adapter; the resized matrix is rebuilt by load_base, so never save it whole
    model.save_pretrained(str(staging), safe_serialization=True, save_embedding_layers=False,
                          state_dict=produced_by.pop("state_dict", None))
    if on_save is not None:
        on_save(staging)
    examples = produced_by.pop("examples")
    if produced_by["token_plan"] is not None:  # the stage carries its vocabulary: it loads with no extra steps
        save_plan(produced_by["token_plan"], staging)
        produced_by["tokenizer"].save_pretrained(str(staging))
    record = {
        **produced_by["meta"],
        "base": produced_by["base"],
        "parent_adapter": str(produced_by["parent_adapter"]) if produced_by["parent_adapter"] else None,
        "lora": produced_by["lora"].model_dump(),
        "train": produced_by["cfg"].model_dump(),
        "examples": len(examples),
        "sources": sorted({ex.file for ex in examples}),
        "steps": result.steps, "tokens": result.tokens, "seconds": round(result.seconds, 3),
        "device": result.device, "dtype": result.dtype, "quantize": result.quantize,
        "micro_batch": result.micro_batch, "grad_accum": result.grad_accum, "ooms": result.ooms,
        "phases": {k: round(v, 3) for k, v in result.phases.items()},
        "tokenized": result.tokenized,
        "train_loss": result.train_loss,
        "log": [asdict(entry) for entry in result.log],
        "checks": [asdict(c) for c in result.checks], "stop_reason": result.stop_reason,
        "check_seconds": round(result.check_seconds, 3),
        **({"processes": result.processes} if result.processes > 1 else {}),  # a one-process stage.json as before
        "versions": {"torch": torch.__version__, "peft": __import__("peft").__version__},
    }
    (staging / STAGE_FILE).write_text(json.dumps(record, indent=2) + "\n")
    seal(staging)  # every file's sha256, last: what reuse, --from, export and bridge check before trusting it
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, out_dir)


def train_spec(spec: StageSpec, *, progress: bool = False, check: CheckFn | None = None,
               shared: Loaded | None = None, accelerator: Accelerator | None = None) -> StageResult:
    """Train the stage a StageSpec describes (the flow's stages, here, on a `train-stage` worker or in each process
    of a launched one). What is not an input of the adapter (a progress bar, the live gate check, a lent base, the
    processes' Accelerator) is given here, not in the spec."""
    from curriculum import placement

    return train_stage(spec.base, Path(spec.parent_adapter) if spec.parent_adapter else None, spec.examples, spec.lora,
                       spec.train, Path(spec.out_dir), replay_pools=spec.replay_pools, progress=progress,
                       placement=placement.resolve(**spec.placement), tokens=spec.tokens, check=check,
                       budget=spec.budget, meta=spec.meta, shared=shared, accelerator=accelerator)


def finished_stage(out_dir: Path) -> StageResult | None:
    """The result of a stage whose adapter was already saved (a resumed run reuses it)."""
    record_file = Path(out_dir) / STAGE_FILE
    if not (Path(out_dir) / ADAPTER_FILE).exists() or not record_file.exists():
        return None
    rec = json.loads(record_file.read_text())
    log = [StepLog(**entry) for entry in rec.get("log", [])]
    checks = [Check(**c) for c in rec.get("checks", [])]
    return StageResult(Path(out_dir), rec["steps"], rec["tokens"], rec["seconds"], rec["device"], rec["train_loss"], log,
                       checks, rec.get("stop_reason"), rec.get("check_seconds", 0.0), rec.get("dtype", "float32"),
                       rec.get("quantize"), rec.get("micro_batch", 0), rec.get("grad_accum", 0), rec.get("ooms", 0),
                       rec.get("phases", {}), rec.get("processes", 1))


# training settings added after runs were recorded, at their defaults: left out of the hash, so a resumed older run's
# stages still match their own folders
_LATER: dict[str, Any] = {"replay_each": 0, "freeze_lower": 0.0, "consolidate": False}


def stage_inputs(base: str, parent_adapter: Path | None, examples: Sequence[Example],
                 pools: Sequence[Sequence[Example]], lora: LoraConfig, cfg: TrainConfig, **more) -> str:
    """sha256 of everything a stage's adapter is a function of: base, the parent adapter (by its own inputs
    hash, so the chain is covered), the data, the settings, and whatever else is given (budget, token plan)."""
    parent = None
    if parent_adapter is not None:
        record = Path(parent_adapter) / STAGE_FILE
        parent = json.loads(record.read_text()).get("inputs") if record.exists() else str(parent_adapter)
    train = {k: v for k, v in cfg.model_dump().items() if not (k in _LATER and v == _LATER[k])}
    doc = {"base": base, "parent": parent, "examples": [_hashed(e) for e in examples],
           "pools": [_hashed_pool(pool) for pool in pools], "lora": lora.model_dump(), "train": train,
           **more}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _hashed_pool(pool: Sequence[Example]) -> Any:
    """A replay pool as the inputs hash reads it: each example of a list; a node read where it lies, by the
    fingerprint of its rows (what it is and how it is read), so a stage does not read the whole node to be named."""
    return {"rows": pool.fingerprint} if isinstance(pool, ExampleView) else [_hashed(e) for e in pool]


def _hashed(example: Example) -> dict[str, Any]:
    """An example as its stage's inputs hash reads it: a pair without a system prompt or earlier turns as it was
    read before conversations existed, so the stages of runs recorded then still match theirs."""
    out = asdict(example)
    if example.system is None:
        del out["system"]
    if not example.history:
        del out["history"]
    return out


def stage_owner(out_dir: Path) -> dict[str, str] | None:
    """{run_id, inputs} a finished stage folder records, {} for a folder without them, None when no folder."""
    out_dir = Path(out_dir)
    if not out_dir.exists():
        return None
    try:
        rec = json.loads((out_dir / STAGE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not (out_dir / ADAPTER_FILE).exists():
        return {}
    return {k: rec[k] for k in ("run_id", "inputs") if k in rec}


def set_aside(out_dir: Path) -> Path:
    """Move a folder that is not this stage's out of the way (kept, never deleted): stage-N.aside-K."""
    out_dir = Path(out_dir)
    k = 1
    while (target := out_dir.with_name(f"{out_dir.name}.aside-{k}")).exists():
        k += 1
    os.replace(out_dir, target)
    return target


def examples_from_records(records) -> list[Example]:
    """Validated records -> chat examples that remember their file:line (a conversation with its earlier turns)."""
    return [example_of(r) for r in records]


def pool_of(records) -> Sequence[Example]:
    """A node's examples to draw from: a view that reads only the drawn rows when the node lies on disk
    (datasources.NodeRows), else the list."""
    return ExampleView(records) if hasattr(records, "fingerprint") else examples_from_records(records)
