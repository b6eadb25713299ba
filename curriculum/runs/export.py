"""Take a run's result elsewhere: its final adapter as a PEFT folder, or merged into a standalone
Hugging Face model that plain `transformers` loads, each with a model card.

The folder is written beside OUT and renamed into place, so a failed export leaves nothing.
Merging happens on the CPU in float32, so the merged model computes what base + adapter did.
"""

from __future__ import annotations

import os
import shlex
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curriculum.training import integrity
from curriculum.runs.mastery import mastery_markdown
from curriculum.models.load import BUNDLED, TINY, cache_dir
from curriculum.models.tokens import PLAN_FILE, saved_plan

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
                   "vocab.json", "merges.txt", "added_tokens.json", PLAN_FILE)


class ExportError(ValueError):
    """An export that cannot be made, said in one line."""


@dataclass
class RunExport:
    """What an export needs to know of a run (read from the warehouse by the CLI)."""

    run_id: str
    curriculum: str
    base: str
    status: str
    adapter: Path | None
    produced_by: str  # the `curriculum run` command that made the run
    mastery: tuple[list[str], list[tuple]]

    @classmethod
    def from_record(cls, rec: dict[str, Any], warehouse: Path | None = None) -> RunExport:
        """From warehouse.records.run_for_export's dict."""
        return cls(rec["run_id"], rec["curriculum"], rec["base_model"], rec["status"],
                   Path(rec["adapter"]) if rec["adapter"] else None, run_command(rec, warehouse), rec["mastery"])


def run_command(rec: dict[str, Any], warehouse: Path | None = None) -> str:
    """The `curriculum run` command line that reproduces a recorded run (same YAML path, policy, seed, budgets)."""
    cfg = rec.get("config") or {}
    args = ["curriculum", "run", rec.get("graph_path") or "GRAPH.yaml", "--policy", rec["policy"], "--seed", str(rec["seed"])]
    if cfg.get("profile"):
        args += ["--profile", cfg["profile"]]
    if cfg.get("max_stages") is not None:
        args += ["--max-stages", str(cfg["max_stages"])]
    overrides = dict(cfg.get("train_overrides") or {})
    if "max_steps" in overrides:
        args += ["--max-steps", str(overrides.pop("max_steps"))]
    if warehouse is not None:
        args += ["--db", str(warehouse)]
    args += ["--run-id", rec["run_id"]]
    line = shlex.join(args)
    return line + (f"  # and the flow parameter train_overrides={overrides}" if overrides else "")


def _base_text(base: str) -> str:
    if base == BUNDLED:
        return "the bundled SmolLM2-135M-Instruct (its Q4_1 GGUF, dequantized to float32)"
    if base == TINY:
        return "the tiny random Llama `curriculum` tests with (not a useful model)"
    return f"`{base}`"


def _loading(out: Path, merged: bool, base: str, plan: dict | None) -> str:
    if merged:
        return ("```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
                f'model = AutoModelForCausalLM.from_pretrained("{out.name}")\n'
                f'tokenizer = AutoTokenizer.from_pretrained("{out.name}")\n```')
    if base == TINY:
        return "The tiny random base exists in no folder (`curriculum.models.load.tiny_random`): export with --merge instead."
    where = str(cache_dir() / BUNDLED) if base == BUNDLED else base
    note = "  # where curriculum converted the bundled model" if base == BUNDLED else ""
    resize = "base.resize_token_embeddings(len(tokenizer))  # the hyperword tokens; their rows are in the adapter\n" \
        if plan else ""
    return ("```python\nfrom peft import PeftModel\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
            f"BASE = {where!r}{note}\n"
            f'tokenizer = AutoTokenizer.from_pretrained("{out.name}")\n'
            "base = AutoModelForCausalLM.from_pretrained(BASE)\n" + resize +
            f'model = PeftModel.from_pretrained(base, "{out.name}")\n```')


def model_card(run: RunExport, out: Path, *, merged: bool, plan: dict | None, export_command: str) -> str:
    """README.md of an exported folder: what it is, the mastery table, how it was produced and how to load it."""
    columns, rows = run.mastery
    meta = ["---", f"library_name: {'transformers' if merged else 'peft'}"]
    if "/" in run.base and not Path(run.base).expanduser().exists():  # a hub id
        meta.append(f"base_model: {run.base}")
    meta += ["tags:", "  - curriculum", "  - lora"] + (["  - merged"] if merged else []) + ["---", ""]
    what = ("A standalone model: the base with the run's final LoRA adapter merged into its weights."
            if merged else "The run's final LoRA adapter, as a PEFT folder.")
    words = [e["word"] for e in (plan or {}).get("lexicon", [])]
    sized = ("the embedding matrix is sized for them" if merged
             else "their trained embedding rows are in the adapter")
    vocab = (f"\n\nThe vocabulary has {len(words)} hyperword(s) as single tokens ({', '.join(words)}), each in its "
             f"surface forms (with and without a leading space, capitalised): the tokenizer here knows them and "
             f"{sized}." if words else "")
    status = "" if run.status == "completed" else f"\n\nThe run's status was '{run.status}' when this was exported."
    return "\n".join(meta) + (
        f"# {run.curriculum}: run {run.run_id}\n\n{what} Base model: {_base_text(run.base)}. "
        f"Adapter of stage `{run.adapter.name if run.adapter else '-'}`, the one the run ended with."
        f"{vocab}{status}\n\n"
        "## Mastery\n\n"
        "Per node of the curriculum: the policy's end status, the base model's score, and the final score (the "
        "last probe on an adapter the run kept, on n items) with one-sided bounds at the gate's confidence.\n\n"
        f"{mastery_markdown(columns, rows)}\n\n"
        "## How it was produced\n\n"
        f"```sh\n{run.produced_by}\n{export_command}\n```\n\n"
        "## Loading\n\n"
        f"{_loading(out, merged, run.base, plan)}\n")


def check_target(out: Path) -> None:
    """OUT may be absent or an empty folder, nothing else."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out}: exists and is not an empty folder; pick a new OUT")


def export_run(run: RunExport, out: Path, *, merge: bool = False, export_command: str = "") -> Path:
    """Write the run's final adapter (or, with merge, the merged model) and its model card to OUT."""
    if run.adapter is None:
        raise ExportError(f"run '{run.run_id}' kept no adapter (no stage of it was accepted): nothing to export")
    if not (run.adapter / ADAPTER_FILES[1]).is_file():
        where = "" if run.adapter.is_absolute() else " (a path relative to where the run ran: export from there)"
        raise ExportError(f"{run.adapter}: the run's final adapter is not there{where}")
    try:
        integrity.check(run.adapter)  # a damaged adapter is not copied on as if it were fine
    except integrity.IntegrityError as exc:
        raise ExportError(str(exc)) from None
    check_target(out)
    plan = saved_plan(run.adapter)
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
        (_write_merged if merge else _write_adapter)(run, staging, plan)
        (staging / "README.md").write_text(model_card(run, out, merged=merge, plan=plan, export_command=export_command),
                                          encoding="utf-8")
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _write_adapter(run: RunExport, folder: Path, plan: dict | None) -> None:
    """The adapter files as the stage saved them, plus the tokenizer (with the hyperwords when the run had them)."""
    adapter = run.adapter
    assert adapter is not None  # export_run refuses a run that kept none
    for name in ADAPTER_FILES + TOKENIZER_FILES:
        if (adapter / name).is_file():
            shutil.copy2(adapter / name, folder / name)
    if not (adapter / "tokenizer_config.json").is_file():
        from curriculum.models.load import load_tokenizer

        load_tokenizer(run.base).save_pretrained(str(folder))


def _write_merged(run: RunExport, folder: Path, plan: dict | None) -> None:
    """Base (resized for the hyperwords) + adapter, merged with peft's merge_and_unload, as safetensors."""
    from peft import PeftModel

    from curriculum.models.load import load_base
    from curriculum.models.placement import CPU

    loaded = load_base(run.base, placement=CPU, tokens=plan)
    with warnings.catch_warnings():  # peft 0.21 asks transformers 5 for a deprecated attribute on load
        warnings.simplefilter("ignore", FutureWarning)
        merged = PeftModel.from_pretrained(loaded.model, str(run.adapter)).merge_and_unload()
    merged.save_pretrained(str(folder), safe_serialization=True)
    loaded.tokenizer.save_pretrained(str(folder))
