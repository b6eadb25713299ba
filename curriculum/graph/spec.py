"""Pydantic models of the curriculum YAML: the user's main interface.

The JSON Schema shipped as graphs/schema.json is generated from these models, so editors
complete exactly the keys that validation accepts.

Why one long file: the schema is generated from one module's models, in the order a user reads the
YAML, and most of its length is each field's description (which the editor shows as you type).
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, model_validator


class Layer(str, Enum):
    """Layers of meaning, from seed 002: what it is, why, what it is like, where it carries."""

    definition = "definition"
    causality = "causality"
    analogy = "analogy"
    transfer = "transfer"
    generalization = "generalization"
    counterexample = "counterexample"


Facet = Literal["lexical", "logical", "narrative", "philosophical"]
Policy = Literal["gated", "greedy", "bandit", "random", "flat", "fixed", "mix", "skill-it"]
ProbeKind = Literal["paraphrase", "transfer", "lmeval", "analogy", "analogy_generative"]
CONTINUOUS_PROBE_KINDS = frozenset({"paraphrase", "analogy_generative"})  # scored by meaning; the others right or wrong
CHOICE_PROBE_KINDS = frozenset({"transfer", "analogy"})  # options scored by log-likelihood (lmeval: by lm-eval)


def _unit_interval(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"must be in [0, 1], got {value}")
    return value


UnitFloat = Annotated[float, AfterValidator(_unit_interval)]


def _gate_level(value: object) -> float | str:
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be a number in [0, 1] or 'auto', got {value!r}")
    return _unit_interval(float(value))


GateLevel = Annotated[
    float | Literal["auto"], PlainValidator(_gate_level),
    WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0, "maximum": 1}, {"const": "auto"}]}),
]


class Strict(BaseModel):
    """Unknown keys are errors: a typo in a key must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid")


class LoraConfig(Strict):
    r: int = Field(8, ge=1, description="LoRA rank")
    alpha: float = Field(16, gt=0, description="LoRA scaling numerator (alpha / r)")
    dropout: UnitFloat = Field(0.05, description="dropout on the LoRA path")
    target_modules: str | list[str] = Field(
        "all-linear", description="'all-linear' or a list of module names"
    )


TokenInit = Literal["compositional", "gloss", "random"]


class NewTokens(Strict):
    """Each lexicon hyperword becomes one token whose embedding rows train with the LoRA stage."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    source: Literal["lexicon"] = Field("lexicon", alias="from", description="where the new tokens come from")
    init: TokenInit = Field(
        "compositional",
        description="new rows start as the mean of the parts' embeddings, of the gloss's tokens, or random",
    )


DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:\d+)?)$"


def _device_name(value: str) -> str:
    if not re.fullmatch(DEVICE_PATTERN, value):
        raise ValueError(f"unknown device {value!r} (expected auto, cpu, cuda, cuda:N or mps)")
    return value


DeviceName = Annotated[str, AfterValidator(_device_name),
                       WithJsonSchema({"type": "string", "pattern": DEVICE_PATTERN})]
DtypeName = Literal["auto", "float32", "bfloat16", "float16"]


class ModelConfig(Strict):
    base: str = Field(
        "smollm2-135m-instruct",
        description="'smollm2-135m-instruct' (bundled), 'tiny-random', a local HF folder or a hub id",
    )
    lora: LoraConfig = Field(default_factory=LoraConfig)
    new_tokens: NewTokens | None = Field(None, description="add the lexicon's hyperwords as single tokens")
    device: DeviceName = Field("auto", description="where the model runs: 'auto' (CUDA when there is a GPU, else the "
                               "CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'")
    dtype: DtypeName = Field("auto", description="weights' precision: 'auto' (bfloat16 on CUDA, float16 on a card "
                             "without bf16, float32 elsewhere); float16 trains with loss scaling")
    quantize: Literal["4bit"] | None = Field(None, description="'4bit': the base loads in 4 bits (QLoRA, for models "
                                             "that do not fit in bf16); needs CUDA and bitsandbytes (the [gpu] extra)")
    processes: int = Field(1, ge=1, description="processes that train each stage together through Hugging Face "
                           "Accelerate (data parallel, one per GPU; on the CPU, gloo): every process trains on its share "
                           "of each optimizer step's examples; more than 1 trains a stage one fixed length, without "
                           "checks between rounds (the gate decides after); the flow, probes and warehouse stay in one")
    accelerate_config: str | None = Field(None, description="an Accelerate config YAML (`accelerate config` writes "
                                          "one), relative to the curriculum file, for stages of more than one process: "
                                          "e.g. FSDP instead of the default DDP; the number of processes is "
                                          "model.processes")


class LexiconEntry(Strict):
    """A hyperword, the words it is built from and what it means (seed 000/003)."""

    word: Annotated[str, Field(pattern=r"^\S+$", description="the hyperword, no spaces")]
    parts: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    gloss: Annotated[str, Field(min_length=1)]
    mode: str | None = Field(None, description="emotional profile tag, e.g. nostalgia")
    context: str | None = Field(None, description="scene tag, e.g. childhood")

    def tags(self) -> dict[str, str]:
        """What travels with every probe item that names this hyperword."""
        return {"hyperword": self.word} | {k: v for k, v in (("mode", self.mode), ("context", self.context)) if v}


class TrainConfig(Strict):
    """Per-stage training knobs; a node's `train:` overrides only the keys it sets.

    A stage is sized by mastery: it trains in rounds of `epochs` epochs (at least `round_steps` optimizer
    steps), checks the node's first probe draw after each, and stops when the gate is clearly met, at a
    plateau (no gain of `min_delta` for `patience` rounds) or when the node's budget is spent.
    """

    epochs: int = Field(2, ge=1, description="epochs of one training round (a stage runs rounds until its check stops it)")
    round_steps: int = Field(4, ge=1, description="fewest optimizer steps between two checks of a stage")
    max_epochs: int = Field(24, ge=1, description="the node's budget in epochs over all its attempts (at least 6 rounds and 48 steps)")
    max_steps: int | None = Field(None, ge=1, description="the node's budget in optimizer steps; caps max_epochs when set")
    min_delta: float = Field(0.02, ge=0, description="a round improves when its check score gains at least this")
    patience: int = Field(2, ge=1, description="rounds without improvement before the stage stops at a plateau")
    lr: float = Field(1.0e-3, ge=0, description="peak learning rate of the LoRA adapter (0 trains nothing: a null stage)")
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_length: int = Field(128, ge=8)
    warmup_ratio: UnitFloat = 0.1
    weight_decay: float = Field(0.0, ge=0)
    seed: int = 0
    replay: UnitFloat = Field(
        0.25, description="replay share: about this fraction of the node's examples is drawn again from the nodes "
        "the run has learned (mastered, or kept below their gate), at least one example from each; 0: none")
    replay_each: int = Field(
        0, ge=0, description="replay sized per node: at least this many examples drawn again from each held node "
        "every stage (all of a smaller node's), however few the trained node has and however many nodes are held; "
        "0: the replay share alone")
    freeze_lower: UnitFloat = Field(
        0.0, description="share of the model's layers, counted from the input, whose adapter weights a continued "
        "adapter no longer trains: the lower layers keep what the first stage put there, the upper ones go on "
        "learning (Spurious Forgetting, Zheng et al. 2025); 0: every layer trains in every stage")
    consolidate: bool = Field(
        False, description="read from `defaults.train`, node-by-node policies: once the graph is done, one closing "
        "stage trains one round over every held node's data (counted in the run's steps), kept unless it makes a "
        "held node significantly worse")
    packing: Literal["auto", "on", "off"] = Field(
        "auto", description="how a micro-batch's examples go to the model: 'on' packed end to end in one row (no "
        "padding, attention kept inside each example, the same loss per example); 'off' right-padded to the "
        "batch's longest; 'auto': packed where the model's attention has variable-length kernels (flash-attention), "
        "padded under SDPA or eager, which compute a packed row's whole attention (docs/benchmarks.md, 'Training')")


class GateConfig(Strict):
    min_score: GateLevel = Field(
        0.7, description="a node is mastered when its probe score reaches this; 'auto': the gate `curriculum "
        "calibrate` suggests, computed from the data and the base model at the start of the run",
    )
    confidence: float = Field(
        0.9, gt=0.5, lt=1.0,
        description="one-sided confidence of gate and forgetting decisions: pass when the score's lower bound "
        "clears the gate, fail when its upper bound is below it, otherwise draw more items",
    )
    max_attempts: int = Field(2, ge=1, description="training attempts before on_fail or back-off (a retry continues "
                              "the last attempt's adapter while the node's budget lasts)")
    max_rehearsals: int = Field(2, ge=0, description="times a forgotten node is rehearsed before it is left forgotten")
    keep_progress: bool = Field(
        True, description="a node whose budget is spent below its gate keeps its last stage's adapter unless that stage "
        "made the model significantly worse on what it held; false: that adapter is discarded (the node still ends "
        "'below-gate' and its dependants go on, unless `required`)")
    required: bool = Field(
        False, description="the strict gate: a node that ends below it backs off (unless it significantly learned and "
        "keep_progress holds) and every node that requires it is skipped; false: it ends 'below-gate', stays in "
        "replay, and its dependants go on")
    max_drift: float | None = Field(
        None, ge=0, description="needs `drift:`: a stage whose drift (mean per-token log-likelihood of the base "
        "model's own answers, adapted minus base) is clearly below -max_drift (its upper bound at `confidence`) is "
        "a failed stage for its node: adapter discarded, the node backs off (a rehearsal counts as spent)")


DRIFT_PROMPTS = 100  # neutral prompts shipped in probes/data/drift_prompts.jsonl


class DriftConfig(Strict):
    """Drift of general ability: the base model's own greedy answers to neutral prompts shipped with the product,
    recorded once per run at baseline; after each stage, how much less likely the adapted model finds them."""

    prompts: int = Field(DRIFT_PROMPTS, ge=2, le=DRIFT_PROMPTS, description=f"how many of the {DRIFT_PROMPTS} shipped "
                         "neutral prompts (an even spread over them); each stage costs one batched forward pass on them")
    answer_tokens: int = Field(32, ge=1, le=128, description="longest base answer recorded, in tokens")


class ExamConfig(Strict):
    """Check items steer a run, exam items judge it. Every probe item is one or the other: everything a run decides
    (gates, draws, retries, a stage's best round, plateaus, forgetting, auto gates, bandit rewards, mix weights)
    reads check items only; the end state is scored on both, and its exam score is the verdict (read once, last). A probe's own
    `exam:` file is its exam; otherwise each item's side is a seeded hash of its content, so every run, seed and
    policy of a graph sits the same exam."""

    share: UnitFloat = Field(0.5, description="about this share of each probe's items is exam (0: no exam, every "
                             "item steers the run and verdicts are unsplit)")
    seed: int = Field(0, description="salt of the split's hash: another seed draws another exam from the same items")
    min_items: int = Field(8, ge=1, description="fewest check items and fewest exam items a node needs to be split "
                           "(below 8 a side, a 95 % interval spans more than half the scale); "
                           "a smaller node stays unsplit (every item a check item) and its verdict is marked so")


class MlflowConfig(Strict):
    uri: str | None = Field(None, description="tracking URI; default MLflow's own ($MLFLOW_TRACKING_URI, else "
                            "sqlite:///mlflow.db in the working directory): no server needed")
    experiment: str | None = Field(None, description="experiment name; default the curriculum's name")


class TensorboardConfig(Strict):
    dir: str | None = Field(None, description="a folder holding one folder of event files per run (DIR/RUN_ID); "
                            "default the run's own folder's `tensorboard/`")


class TrackingConfig(Strict):
    """Trackers a run is mirrored to as it goes (the warehouse stays the record): `--track` adds them too."""

    mlflow: MlflowConfig | None = Field(None, description="one MLflow run per curriculum run, a nested run per stage")
    tensorboard: TensorboardConfig | None = Field(None, description="TensorBoard event files: losses, scores, decisions")


class Defaults(Strict):
    train: TrainConfig = Field(default_factory=TrainConfig)
    gate: GateConfig = Field(default_factory=GateConfig)


Scoring = Literal["calibrated", "raw"]
Options = Literal["listed", "hidden"]


class ProbeSpec(Strict):
    kind: ProbeKind
    scoring: Scoring = Field(
        "calibrated",
        description="choice probes: 'calibrated' ranks options by log-likelihood given the question minus given a "
        "content-free question (removes a lean towards some words); 'raw' by per-token log-likelihood",
    )
    options: Options = Field(
        "listed",
        description="choice probes: 'listed' asks the question with its options listed under it; 'hidden' asks the "
        "question exactly as written and scores each option as the answer (lm-eval's multiple-choice "
        "log-likelihood): for items written in the training data's own format, so the probe asks what was trained",
    )
    items: str | None = Field(None, description="JSONL of held-out items, relative to the YAML")
    exam: str | None = Field(
        None, description="JSONL of this probe's exam items (the shape of `items`), relative to the YAML: only the "
        "run's end state reads them, and every `items` item is then a check item; without it the items are split "
        "by the curriculum's `exam:` settings")
    fields: dict[str, str] = Field(
        default_factory=dict, description="the item's field -> the column holding it, for `items` and `exam` files "
        "in another shape (e.g. {prompt: question, answer: label}); such files may be JSON, Parquet, CSV or a "
        "saved dataset too, read by `datasets`")
    task: str | None = Field(
        None, description="lmeval only: an installed lm-eval task name, or a task YAML (.yaml, relative to this file) "
        "whose local data (dataset_path: json, dataset_kwargs.data_files) is relative to the task YAML")
    sample: int | None = Field(
        None, ge=1, description="items used in regression sweeps (all items on the node's own stage); for a `task:` "
        "probe, its first `sample` docs are the node's items (without it the task runs whole, only when all items are asked)"
    )

    @model_validator(mode="after")
    def _needs_source(self) -> ProbeSpec:
        if self.kind == "lmeval":
            if (self.items is None) == (self.task is None):
                raise ValueError("an lmeval probe needs exactly one of 'items' or 'task'")
        elif self.items is None:
            raise ValueError(f"a {self.kind} probe needs 'items'")
        elif self.task is not None:
            raise ValueError(f"'task' is only for lmeval probes, not {self.kind}")
        if self.exam is not None and self.items is None:
            raise ValueError("'exam' needs 'items': a `task:` probe's docs are not split")
        if self.options == "hidden" and self.kind not in CHOICE_PROBE_KINDS:
            raise ValueError(f"'options: hidden' is for choice probes ({', '.join(sorted(CHOICE_PROBE_KINDS))}), not {self.kind}")
        return self


DataFormat = Literal["pairs", "chat", "alpaca", "sharegpt"]
DATA_FIELDS = ("prompt", "answer", "messages", "conversations", "instruction", "input", "output", "system")


class DataSource(Strict):
    """A node's training data in a format fine-tuning tools already read, through the `datasets` library.

    A bare path in `data:` means the same with every setting at its default (format told by the columns)."""

    path: str | None = Field(None, description="a JSONL, JSON, Parquet or CSV file, or a folder written by "
                             "`datasets`' save_to_disk, relative to the YAML")
    hub: str | None = Field(None, description="a hub dataset id (the only data read over the network, like a hub model)")
    split: str = Field("train", description="the split of a saved DatasetDict or a hub dataset")
    format: DataFormat | None = Field(
        None, description="pairs {prompt, answer}; chat {messages: [{role, content}]}; alpaca {instruction, input, "
        "output}; sharegpt {conversations: [{from, value}]}; default: told by the columns")
    fields: dict[str, str] = Field(
        default_factory=dict, description="the format's field -> the column holding it, where the names differ "
        "(e.g. {prompt: question, answer: reply}, {messages: dialogue}, {system: persona})")
    system: str | None = Field(None, description="a system prompt for every example without one of its own")
    where: dict[str, str | int | bool] = Field(
        default_factory=dict, description="only rows whose columns hold these values: one dataset split into nodes by a column")

    @model_validator(mode="after")
    def _one_source(self) -> DataSource:
        if (self.path is None) == (self.hub is None):
            raise ValueError("data needs exactly one of 'path' or 'hub'")
        if bad := sorted(set(self.fields) - set(DATA_FIELDS)):
            raise ValueError(f"unknown field '{bad[0]}' in 'fields' (known: {', '.join(DATA_FIELDS)})")
        return self


class Node(Strict):
    layer: Layer
    facet: Facet | None = None
    description: str | None = None
    data: str | DataSource = Field(
        description="the node's training data, relative to the YAML: a JSONL of pairs {prompt, answer}, or any "
        "file or dataset `datasets` reads in the pairs, chat, alpaca or sharegpt format (a path, or a mapping)")

    @property
    def source(self) -> DataSource:
        """`data` as a DataSource, a bare path included."""
        return self.data if isinstance(self.data, DataSource) else DataSource(path=self.data)
    requires: list[str] = Field(default_factory=list, description="nodes that must be settled first (mastered, or below-gate once their budget is spent; a `required` gate must pass)")
    on_fail: str | None = Field(None, description="remedial node taken when this node's gate fails")
    entered_by: Literal["on_fail"] | None = Field(
        None, description="'on_fail': scheduled only when a gate sends the run here"
    )
    train: TrainConfig | None = None
    gate: GateConfig | None = None
    probes: list[ProbeSpec] = Field(default_factory=list)


class Curriculum(Strict):
    curriculum: str = Field(description="name of the curriculum")
    model: ModelConfig = Field(default_factory=ModelConfig)
    defaults: Defaults = Field(default_factory=Defaults)
    policy: Policy = "gated"
    lexicon: list[LexiconEntry] = Field(default_factory=list, description="the hyperwords this curriculum teaches")
    profiles: dict[str, list[str]] = Field(
        default_factory=dict,
        description="name -> node ids: `--profile NAME` runs them with what they require and their on_fail branches",
    )
    exam: ExamConfig = Field(default_factory=ExamConfig, description="how probe items split into check items (the "
                             "run's decisions) and exam items (its verdict)")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig,
                                     description="mirror runs to MLflow or TensorBoard (e.g. {mlflow: {}})")
    drift: DriftConfig | None = Field(
        None, description="measure drift of general ability after every stage (e.g. {prompts: 32}); off when absent")
    nodes: dict[str, Node] = Field(description="node id -> node", min_length=1)

    def train_config(self, node_id: str) -> TrainConfig:
        """The defaults with the node's own `train:` keys laid over them."""
        override = self.nodes[node_id].train
        base = self.defaults.train
        return base if override is None else base.model_copy(update=override.model_dump(exclude_unset=True))

    def gate_config(self, node_id: str) -> GateConfig:
        override = self.nodes[node_id].gate
        base = self.defaults.gate
        return base if override is None else base.model_copy(update=override.model_dump(exclude_unset=True))


# JSONL record shapes. Extra fields are kept (tags such as `context` travel with the item).


class TrainExample(BaseModel):
    """A training example: its last user turn and the answer to it, and for a conversation the turns before
    (user, assistant pairs, each assistant turn trained too) and its system prompt."""

    model_config = ConfigDict(extra="allow")
    prompt: Annotated[str, Field(min_length=1)]
    answer: Annotated[str, Field(min_length=1)]
    system: str | None = None
    history: list[tuple[str, str]] = Field(default_factory=list)


class ParaphraseItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    prompt: Annotated[str, Field(min_length=1)]
    reference: Annotated[str, Field(min_length=1)]
    references: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, description="further right answers in other words; an answer is compared with the closest"
    )
    facts: list[Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]] = Field(
        default_factory=list,
        description="key facts a right answer carries, each a list of alternative cue words (matched at a word start)",
    )

    def all_references(self) -> list[str]:
        return [self.reference, *self.references]


class ChoiceItem(BaseModel):
    """Multiple choice scored by log-likelihood: transfer items and local lm-eval tasks."""

    model_config = ConfigDict(extra="allow")
    prompt: Annotated[str, Field(min_length=1)]
    choices: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=2)]
    answer: int = Field(ge=0)

    @model_validator(mode="after")
    def _answer_in_range(self) -> ChoiceItem:
        if self.answer >= len(self.choices):
            raise ValueError(f"answer index {self.answer} is outside choices (0..{len(self.choices) - 1})")
        return self


ANALOGY_QUESTION = "Which of these situations, each set in another domain, has the same structure of relations?"
ANALOGY_OPEN_QUESTION = ("Describe a situation in a different domain with the same structure of relations, "
                         "and say what corresponds to what.")


def _analogy_prompt(data: object, default_question: str) -> object:
    """An analogy item names its situation; the question put to the model is built from it."""
    if isinstance(data, dict):
        if "prompt" in data:
            raise ValueError("an analogy item gives 'situation' (and optionally 'question'), not 'prompt'")
        situation = data.get("situation")
        # without a situation only its own error is reported, not a missing prompt too
        prompt = f"{situation}\n{data.get('question') or default_question}" if isinstance(situation, str) else "-"
        data = {**data, "prompt": prompt}
    return data


class AnalogyItem(ChoiceItem):
    """Where do you see the same structure? Which of the choices, situations set in other domains, shares the
    situation's relations (scored as choice items are, calibrated)."""

    situation: Annotated[str, Field(min_length=1)]
    question: str | None = Field(None, description=f"asked after the situation; default: {ANALOGY_QUESTION!r}")

    @model_validator(mode="before")
    @classmethod
    def _prompt(cls, data: object) -> object:
        return _analogy_prompt(data, ANALOGY_QUESTION)


class AnalogyGenerativeItem(ParaphraseItem):
    """The model names an analogous situation itself; scored as a paraphrase against the references."""

    situation: Annotated[str, Field(min_length=1)]
    question: str | None = Field(None, description=f"asked after the situation; default: {ANALOGY_OPEN_QUESTION!r}")

    @model_validator(mode="before")
    @classmethod
    def _prompt(cls, data: object) -> object:
        return _analogy_prompt(data, ANALOGY_OPEN_QUESTION)


ITEM_MODELS: dict[str, type[BaseModel]] = {
    "paraphrase": ParaphraseItem,
    "transfer": ChoiceItem,
    "lmeval": ChoiceItem,
    "analogy": AnalogyItem,
    "analogy_generative": AnalogyGenerativeItem,
}
