"""One curriculum stage: a LoRA fine-tune on a node's chat pairs, continuing from the parent.

`train_stage` is a pure function of (base, parent adapter, examples, LoRA and train config)
-> (adapter directory, metrics): nothing global is read or written, so a stage can run in
another process or on another machine.

Why it is long: the stage is one transaction, from loading the base to the save of its adapter; the rounds,
the checks between them, the out-of-memory halving and the best round's weights share its state (the model, the
optimizer, the scheduler). What it trains on is made in batches.py, its folder written and read in stagefiles.py.
"""

from __future__ import annotations

import math
import random
import re
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel, get_peft_model
from transformers import get_cosine_schedule_with_warmup

from curriculum.training import memory
from curriculum.models.chat import Example
from curriculum.models.tokencache import TokenCache
from curriculum.models.load import Loaded, load_base
from curriculum.models.placement import Placement
from curriculum.training.sizing import Check, best_check, round_length, stop_reason
from curriculum.graph.spec import LoraConfig, TrainConfig
from curriculum.training.stagespec import StageSpec
from curriculum.training.batches import (Tokenized, collate, packs, shard, summed_loss, tokenize_examples, windows,
                                         with_replay)
from curriculum.training.stagefiles import StageResult, StepLog, save_stage
from curriculum.models.tokens import Plan, hyperword_ids, trainable_token_indices

if TYPE_CHECKING:
    from accelerate import Accelerator

# peft still calls a transformers method deprecated in v5; the warning is theirs and fills every stage's log
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


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


def _accumulate(model, batches: Sequence[Sequence[Tokenized]], micro: int, answer_tokens: int, pad_id: int,
                placement: Placement, scaler: torch.amp.GradScaler | None, packed: bool = False) -> tuple[float, int]:
    """Forward and backward over one optimizer step's batches, `micro` examples at a time: every micro-batch's
    summed loss is divided by the whole window's answer tokens, so the gradient is the same however it is cut."""
    total, tokens = torch.zeros((), device=placement.device), 0
    for batch in batches:
        for start in range(0, len(batch), micro):
            chunk = batch[start : start + micro]
            memory.pressure(len(chunk))
            inputs = collate(chunk, pad_id, placement.device, packed)
            with placement.autocast():
                loss = summed_loss(model, inputs) / answer_tokens
            (scaler.scale(loss) if scaler is not None else loss).backward()
            total += loss.detach().float()
            tokens += sum(len(it.ids) for it in chunk)  # the mask's ones, without waiting for the device
    return total.item(), tokens


def _accumulate_shard(accelerator: Accelerator, model, batches: Sequence[Sequence[Tokenized]], micro: int, answer_tokens: int,
                      pad_id: int, placement: Placement, scaler: torch.amp.GradScaler | None,
                      packed: bool = False) -> tuple[float, int]:
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
        inputs = collate(chunk, pad_id, placement.device, packed)
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
    rounds (curriculum.training.sizing), calls check(model, tokenizer) after each, stops when the gate is met,
    at a plateau or when `budget` steps are spent, and keeps the best round's weights.
    tokens: a hyperword token plan (curriculum.models.tokens); the new rows train with the stage.
    meta: what the folder belongs to ({run_id, inputs}), kept in stage.json so a resume reuses only its own stage.
    placement: device and dtype (curriculum.models.placement; default auto); a shared base brings its own.
    shared: an already loaded base (the prober's, on a GPU: one copy in memory) to train on instead of loading
        one; its LoRA layers are taken out again after saving, so it comes back as it was lent.

    Out of memory, the step is run again with half the micro-batch and twice the accumulation (the same examples
    per optimizer step), down to one example, before the error reaches any retry; stage.json records what it ran with.
    accelerator: an accelerate.Accelerator of more than one process (curriculum.training.launch): the model is prepared (DDP,
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
    packed = packs(cfg, model)  # read off the model's own config, before a wrapper hides it
    if parallel is not None:  # before the optimizer: FSDP replaces the parameters it shards
        model = parallel.prepare(model)
    rng = random.Random(cfg.seed)
    per_epoch = math.ceil(math.ceil(len(items) / cfg.batch_size) / cfg.grad_accum)
    total_steps = budget if budget is not None else per_epoch * cfg.epochs
    every = round_length(len(items), cfg) if check is not None else total_steps
    params = [p for p in model.parameters() if p.requires_grad]
    on_card = where.device.startswith("cuda")
    # one fused kernel for the whole update where the card has it; the CPU keeps its default (its adapters' bytes)
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True if on_card else None)
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
        for epoch, window in windows(items, cfg, rng):
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
                                                                       tokenizer.pad_token_id, where, scaler, packed)
                    else:
                        window_loss, window_tokens = _accumulate(model, batches, micro, answer_tokens,
                                                                 tokenizer.pad_token_id, where, scaler, packed)
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
        save_stage(model, result, base=base, parent_adapter=parent_adapter, examples=mixed, lora=lora, cfg=cfg,
              token_plan=tokens, tokenizer=tokenizer, meta=meta or {}, state_dict=state)
    if parallel is not None:
        parallel.wait_for_everyone()  # the adapter is whole before any process reports the stage done
    phases["save"] = time.perf_counter() - saving  # not in stage.json: the record is part of what is timed
    if shared is not None:
        model.unload().eval()  # the lent base without this stage's LoRA layers
    return result


def train_spec(spec: StageSpec, *, progress: bool = False, check: CheckFn | None = None,
               shared: Loaded | None = None, accelerator: Accelerator | None = None) -> StageResult:
    """Train the stage a StageSpec describes (the flow's stages, here, on a `train-stage` worker or in each process
    of a launched one). What is not an input of the adapter (a progress bar, the live gate check, a lent base, the
    processes' Accelerator) is given here, not in the spec."""
    from curriculum.models import placement

    return train_stage(spec.base, Path(spec.parent_adapter) if spec.parent_adapter else None, spec.examples, spec.lora,
                       spec.train, Path(spec.out_dir), replay_pools=spec.replay_pools, progress=progress,
                       placement=placement.resolve(**spec.placement), tokens=spec.tokens, check=check,
                       budget=spec.budget, meta=spec.meta, shared=shared, accelerator=accelerator)
