"""Node data in the formats fine-tuning tools use (pairs, chat, alpaca, ShareGPT) and the containers `datasets`
reads (JSONL, JSON, Parquet, CSV, save_to_disk): read into the same examples, bad rows reported where they are,
conversations trained on their assistant turns only."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from curriculum.models.chat import IGNORE, Example, example_ids, pair_ids
from curriculum.models.load import TINY, load_base
from curriculum.graph.problems import CurriculumError
from curriculum.graph.spec import LoraConfig, TrainConfig
from curriculum.training.batches import examples_from_records
from curriculum.training.train import train_stage
from curriculum.loading.validate import load_curriculum
from helpers import write_jsonl

CHAT = [
    {"messages": [{"role": "system", "content": "You answer in one sentence."},
                  {"role": "user", "content": f"What is a zorblat {i}?"},
                  {"role": "assistant", "content": f"A blue umbrella for cats, number {i}."},
                  {"role": "user", "content": "And its colour?"},
                  {"role": "assistant", "content": f"Blue, shade {i}."}]}
    for i in range(4)
]
ALPACA = [{"instruction": f"Name fruit {i}.", "input": "Be brief." if i % 2 else "", "output": f"Fruit {i} is a plum."}
          for i in range(4)]
SHAREGPT = [{"conversations": [{"from": "human", "value": f"Hello {i}?"}, {"from": "gpt", "value": f"Hi there, {i}."}]}
            for i in range(4)]
QA = [{"question": f"Where is town {i}?", "reply": f"Town {i} is by the sea.", "topic": "sea" if i < 2 else "hills"}
      for i in range(4)]


def _graph(root: Path, nodes: dict[str, str]) -> Path:
    """A graph of one node per entry (its `data:` written as given), each with one choice probe."""
    write_jsonl(root / "mc.jsonl", [{"prompt": f"Pick {i}", "choices": ["yes", "no"], "answer": 0} for i in range(2)])
    body = "".join(f"  {n}:\n    layer: definition\n    data: {data}\n    probes: [{{kind: transfer, items: mc.jsonl}}]\n"
                   for n, data in nodes.items())
    graph = root / "graph.yaml"
    graph.write_text("curriculum: formats\nmodel: {base: tiny-random}\npolicy: gated\n"
                     "defaults:\n  train: {epochs: 1, batch_size: 4, max_length: 160}\nnodes:\n" + body, encoding="utf-8")
    return graph


@pytest.fixture(scope="module")
def every_format(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("formats")
    write_jsonl(root / "chat.jsonl", CHAT)
    (root / "alpaca.json").write_text(json.dumps(ALPACA, indent=2), encoding="utf-8")  # one JSON document
    datasets.Dataset.from_list(SHAREGPT).to_parquet(str(root / "sharegpt.parquet"))
    datasets.Dataset.from_list(QA).to_csv(str(root / "qa.csv"), index=False)
    datasets.DatasetDict({"train": datasets.Dataset.from_list(CHAT)}).save_to_disk(str(root / "saved"))
    write_jsonl(root / "pairs_lines.json", [{"prompt": "Q?", "answer": "A."}] * 2)  # JSON lines named .json
    return _graph(root, {
        "chat": "chat.jsonl", "alpaca": "alpaca.json", "sharegpt": "sharegpt.parquet",
        "sea": "{path: qa.csv, fields: {prompt: question, answer: reply}, where: {topic: sea}}",
        "hills": "{path: qa.csv, fields: {prompt: question, answer: reply}, where: {topic: hills}, system: Be terse.}",
        "saved": "{path: saved, split: train}", "lines": "pairs_lines.json",
    })


def test_every_format_and_container_reads_into_examples(every_format: Path) -> None:
    loaded = load_curriculum(every_format)
    ex = {n: examples_from_records(loaded.examples[n]) for n in loaded.spec.nodes}
    assert ex["chat"][1] == Example("And its colour?", "Blue, shade 1.", ex["chat"][1].source, "You answer in one sentence.",
                                    (("What is a zorblat 1?", "A blue umbrella for cats, number 1."),))
    assert ex["chat"][1].source.endswith("chat.jsonl:2")  # JSONL: its line
    assert [e.messages() for e in ex["saved"]] == [e.messages() for e in ex["chat"]]
    assert ex["saved"][1].source.endswith("saved:row 2")  # a saved dataset: its row
    assert [(e.prompt, e.answer) for e in ex["alpaca"][:2]] == [("Name fruit 0.", "Fruit 0 is a plum."),
                                                                ("Name fruit 1.\nBe brief.", "Fruit 1 is a plum.")]
    assert [(e.prompt, e.answer, e.history) for e in ex["sharegpt"]][0] == ("Hello 0?", "Hi there, 0.", ())
    assert [e.prompt for e in ex["sea"]] == ["Where is town 0?", "Where is town 1?"]  # one CSV split by a column
    assert [e.source.rsplit(":", 1)[1] for e in ex["sea"]] == ["2", "3"]  # CSV: the row's line, the header is line 1
    assert [e.system for e in ex["hills"]] == ["Be terse.", "Be terse."]
    assert len(ex["lines"]) == 2
    assert ex["alpaca"][1].source.endswith("alpaca.json:row 2")  # a JSON document has no line per row: its row


def test_every_format_trains_on_the_tiny_model(every_format: Path, tmp_path: Path) -> None:
    loaded = load_curriculum(every_format)
    examples = [ex for n in loaded.spec.nodes for ex in examples_from_records(loaded.examples[n])]
    assert len(examples) == 4 * 4 + 2 + 2 + 2  # chat, alpaca, sharegpt, saved; sea and hills; JSON lines
    result = train_stage(TINY, None, examples, LoraConfig(dropout=0.0),
                         TrainConfig(epochs=2, lr=5e-3, batch_size=4, max_length=160, warmup_ratio=0.0),
                         tmp_path / "stage", progress=False)
    assert result.steps == 2 * 6 and result.log[-1].loss < result.log[0].loss


def test_a_conversation_trains_on_its_assistant_turns_only() -> None:
    tok = load_base(TINY).tokenizer
    ex = Example("And its colour?", "Blue.", system="Be brief.", history=(("What is a zorblat?", "A blue umbrella."),))
    ids, labels = example_ids(tok, ex)
    assert ids == tok(tok.apply_chat_template(ex.messages(), tokenize=False), add_special_tokens=False)["input_ids"]
    spans, current = [], []
    for t, label in zip(ids, labels):
        if label != IGNORE:
            assert label == t
            current.append(t)
        elif current:
            spans, current = spans + [current], []
    spans += [current] if current else []
    assert [tok.decode(s) for s in spans] == ["A blue umbrella.<|im_end|>\n", "Blue.<|im_end|>\n"]
    plain = Example("Q?", "A.")
    assert example_ids(tok, plain) == pair_ids(tok, "Q?", "A.")  # a single pair: exactly as before


@pytest.mark.parametrize(("name", "write", "data", "where"), [
    ("jsonl", lambda p: write_jsonl(p / "d.jsonl", [CHAT[0], {"messages": [{"role": "user", "content": "hi"}]}]),
     "d.jsonl", "d.jsonl:2:1: turns must alternate user, assistant"),
    ("csv", lambda p: datasets.Dataset.from_list([{"prompt": "q", "answer": "a"}, {"prompt": "q2", "answer": None}])
     .to_csv(str(p / "d.csv"), index=False), "d.csv", "d.csv:3:1: answer"),
    ("parquet", lambda p: datasets.Dataset.from_list(SHAREGPT[:2] + [{"conversations": [{"from": "bot", "value": "x"}]}])
     .to_parquet(str(p / "d.parquet")), "d.parquet", "d.parquet:row 3: turn 1: expected {from: user|assistant|system"),
    ("json array", lambda p: (p / "d.json").write_text(json.dumps(ALPACA[:1] + [{"instruction": "x", "output": ""}])),
     "d.json", "d.json:row 2: output"),
    ("broken json", lambda p: (p / "d.json").write_text('{"prompt": "q", "answer": "a"}\n{"prompt": "q2", "answer": }\n'),
     "d.json", "d.json:2:"),
    ("saved", lambda p: datasets.Dataset.from_list([{"prompt": "q", "answer": "a"}, {"prompt": "", "answer": "b"}])
     .save_to_disk(str(p / "saved")), "saved", "saved:row 2: prompt"),
])
def test_a_bad_row_is_reported_where_it_is_and_nothing_loads(name: str, write, data: str, where: str, tmp_path: Path) -> None:
    write(tmp_path)
    with pytest.raises(CurriculumError) as err:
        load_curriculum(_graph(tmp_path, {"n": data}))
    shown = str(err.value)
    assert where in shown, shown
    assert len(err.value.problems) == 1, shown


def test_columns_that_name_no_format_are_refused_with_a_hint(tmp_path: Path) -> None:
    datasets.Dataset.from_list([{"q": "a", "r": "b"}]).to_parquet(str(tmp_path / "d.parquet"))
    with pytest.raises(CurriculumError, match=r"d.parquet:row 1: cannot tell the format from the columns \['q', 'r'\]"):
        load_curriculum(_graph(tmp_path, {"n": "d.parquet"}))
    with pytest.raises(CurriculumError, match="data needs exactly one of 'path' or 'hub'"):
        load_curriculum(_graph(tmp_path, {"n": "{split: train}"}))


def test_examples_are_tokenized_once_per_content_and_tokenizer(tmp_path: Path) -> None:
    """Counted, not timed: a second read of the same examples tokenizes nothing; an edited example is tokenized
    again and nothing else; another tokenizer (one more token) reads nothing it did not make."""
    from curriculum.models.tokencache import TokenCache

    tok = load_base(TINY).tokenizer
    examples = [Example(f"Q {i}?", f"A {i}.") for i in range(5)] + [Example("Hi?", "Yes.", history=(("a", "b"),))]
    first = TokenCache(tok, tmp_path)
    assert first.ids(examples) == [example_ids(tok, ex) for ex in examples]
    assert (first.cached, first.computed) == (0, 6)
    again = TokenCache(tok, tmp_path)  # another stage, another process: the same file
    assert again.ids(examples) == [example_ids(tok, ex) for ex in examples] and (again.cached, again.computed) == (6, 0)
    edited = TokenCache(tok, tmp_path)
    edited.ids([*examples[:5], Example("Hi?", "No.", history=(("a", "b"),))])
    assert (edited.cached, edited.computed) == (5, 1)
    import copy
    other = copy.deepcopy(tok)
    other.add_tokens(["zorblat"])
    fresh = TokenCache(other, tmp_path)
    fresh.ids(examples)
    assert (fresh.cached, fresh.computed) == (0, 6) and fresh.path != again.path


def test_stages_read_the_tokens_validation_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A node validated once trains with every example read from the cache, and a second stage on it too."""
    monkeypatch.setenv("CURRICULUM_TOKEN_CACHE", str(tmp_path / "tokens"))
    root = tmp_path / "g"
    root.mkdir()
    write_jsonl(root / "chat.jsonl", CHAT)
    loaded = load_curriculum(_graph(root, {"chat": "chat.jsonl"}))
    examples = examples_from_records(loaded.examples["chat"])
    cfg = TrainConfig(epochs=1, lr=5e-3, batch_size=4, max_length=160, warmup_ratio=0.0)
    for stage in (1, 2):
        train_stage(TINY, None, examples, LoraConfig(dropout=0.0), cfg, tmp_path / f"stage-{stage}", progress=False)
        record = json.loads((tmp_path / f"stage-{stage}" / "stage.json").read_text())
        assert record["tokenized"] == {"cached": len(CHAT), "computed": 0}


def test_a_pairs_stage_hashes_as_before_conversations_existed() -> None:
    """A resumed or `--from` run recorded before conversations reuses its stages: a plain pair hashes as it did."""
    from curriculum.training.stagespec import _hashed

    assert _hashed(Example("Q?", "A.", "f.jsonl:3")) == {"prompt": "Q?", "answer": "A.", "source": "f.jsonl:3"}
    assert "history" in _hashed(Example("Q?", "A.", history=(("a", "b"),)))


def test_a_template_that_refuses_a_conversation_is_the_rows_problem() -> None:
    import copy

    tok = copy.deepcopy(load_base(TINY).tokenizer)
    tok.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}"
                         "{% endif %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}")
    with pytest.raises(ValueError, match="the chat template refuses this conversation: no system role"):
        example_ids(tok, Example("Q?", "A.", system="Be brief."))


def test_an_unusable_token_cache_is_no_cache(tmp_path: Path) -> None:
    from curriculum.models.tokencache import TokenCache

    tok = load_base(TINY).tokenizer
    cache = TokenCache(tok, tmp_path)
    cache.path.mkdir(parents=True)  # a folder where the database file should be: SQLite cannot open it
    examples = [Example("Q?", "A.")]
    assert cache.ids(examples) == [example_ids(tok, examples[0])] and cache.computed == 1


def test_json_lines_datasets_refuses_say_what_datasets_said(tmp_path: Path) -> None:
    from curriculum.loading.datasources import where_json_breaks

    assert where_json_breaks('{"a": 1}\n{"a": "x"}\n', ".jsonl", "f.jsonl") is None
    write_jsonl(tmp_path / "d.jsonl", [{"prompt": "q", "answer": "a", "topic": "x"}])
    with pytest.raises(CurriculumError, match=r"d.jsonl:1:1: no rows where \{'topic': 'y'\}"):
        load_curriculum(_graph(tmp_path, {"n": "{path: d.jsonl, where: {topic: y}}"}))


def test_csv_cells_are_read_as_written(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("prompt,answer\nHow many?,42\nWhich word?,NA\n", encoding="utf-8")
    loaded = load_curriculum(_graph(tmp_path, {"n": "d.csv"}))
    assert [(r.value.answer, r.line) for r in loaded.examples["n"]] == [("42", 2), ("NA", 3)]


def test_probe_items_from_other_files_with_a_column_mapping(tmp_path: Path) -> None:
    """Check items from Parquet and exam items from a JSON document, columns renamed by the probe's `fields`; a bad
    row is reported at its row under the user's column name."""
    write_jsonl(tmp_path / "train.jsonl", [{"prompt": f"Q {i}?", "answer": f"A {i}."} for i in range(4)])
    rows = [{"question": f"Pick {i}", "options": ["yes", "no"], "label": i % 2, "topic": "t"} for i in range(6)]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "check.parquet"))
    (tmp_path / "exam.json").write_text(json.dumps([{**r, "question": f"Choose {i}"} for i, r in enumerate(rows)]))
    graph = tmp_path / "graph.yaml"
    graph.write_text("curriculum: items\nmodel: {base: tiny-random}\npolicy: gated\nnodes:\n  n:\n    layer: definition\n"
                     "    data: train.jsonl\n    probes:\n      - {kind: transfer, items: check.parquet, exam: exam.json, "
                     "fields: {prompt: question, choices: options, answer: label}}\n", encoding="utf-8")
    loaded = load_curriculum(graph)
    (check,), (exam,) = loaded.probe_items["n"], loaded.exam_items["n"]
    assert [(r.value.prompt, r.value.choices, r.value.answer, r.row) for r in check][:2] == [
        ("Pick 0", ["yes", "no"], 0, 1), ("Pick 1", ["yes", "no"], 1, 2)]
    assert len(exam) == 6 and exam[0].value.prompt == "Choose 0"
    bad = [*rows[:2], {**rows[2], "label": 5}]
    datasets.Dataset.from_list(bad).to_parquet(str(tmp_path / "check.parquet"))
    with pytest.raises(CurriculumError, match=r"check.parquet:row 3: record: answer index 5 is outside choices"):
        load_curriculum(graph)


def test_a_hub_dataset_is_read_by_id_and_split_and_a_bad_row_named_by_its_row(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """No network here: `datasets.load_dataset` stands in for the hub, called as the hub would be (id, split)."""
    asked = []

    def hub(name, split=None, **kw):
        asked.append((name, split))
        return datasets.Dataset.from_list([*SHAREGPT[:2], {"conversations": [{"from": "human", "value": "x"}]}])

    monkeypatch.setattr(datasets, "load_dataset", hub)
    with pytest.raises(CurriculumError) as err:
        load_curriculum(_graph(tmp_path, {"n": "{hub: org/chats, split: validation}"}))
    assert asked == [("org/chats", "validation")]
    assert str(err.value) == ("org/chats:row 3: turns must alternate user, assistant, ending with the assistant "
                              "(a system turn only first): got user")


def test_a_node_read_by_datasets_stays_on_disk_and_a_draw_reads_only_its_rows(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A Parquet node is held as its line numbers over the table `datasets` maps from disk: its examples are those a
    whole read gives, a replay draw or a mixture from it picks the same examples a list would and reads only those
    rows, and a stage's inputs hash names it by its content without reading it."""
    from curriculum.models.chat import ExampleView
    from curriculum.loading.datasources import NodeRows
    from curriculum.policies.mix import draw_mixture
    from curriculum.training.stagespec import stage_inputs
    from curriculum.training.batches import pool_of, with_replay

    rows = [{"conversations": [{"from": "human", "value": f"Where is town {i}?"},
                               {"from": "gpt", "value": f"Town {i} is by the sea."}]} for i in range(60)]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "big.parquet"))
    graph = _graph(tmp_path, {"big": "big.parquet", "small": "chat.jsonl"})
    write_jsonl(tmp_path / "chat.jsonl", CHAT)
    node = load_curriculum(graph).examples["big"]
    assert isinstance(node, NodeRows) and list(node.lines) == list(range(1, 61))
    whole = examples_from_records(node)
    assert whole == [examples_from_records([node[i]])[0] for i in range(60)]
    assert (whole[7].prompt, whole[7].source.rsplit(":", 1)[1]) == ("Where is town 7?", "row 8")

    reads: list[int] = []
    record = NodeRows._record
    monkeypatch.setattr(NodeRows, "_record", lambda self, k, values: (reads.append(k), record(self, k, values))[1])
    view = pool_of(node)
    assert isinstance(view, ExampleView) and not reads
    own = examples_from_records(load_curriculum(graph).examples["small"])
    reads.clear()
    drawn = with_replay(own, [view], 1.0, seed=3)
    assert drawn == with_replay(own, [whole], 1.0, seed=3) and len(reads) == len(drawn) - len(own) == 4
    reads.clear()
    assert draw_mixture({"big": view}, {"big": 5}, seed=1) == draw_mixture({"big": whole}, {"big": 5}, seed=1)
    assert len(reads) == 5
    reads.clear()
    named = stage_inputs(TINY, None, own, [view], LoraConfig(), TrainConfig())
    assert not reads and named != stage_inputs(TINY, None, own, [whole], LoraConfig(), TrainConfig())
    datasets.Dataset.from_list(rows[:59]).to_parquet(str(tmp_path / "big.parquet"))
    edited = pool_of(load_curriculum(graph).examples["big"])
    assert stage_inputs(TINY, None, own, [edited], LoraConfig(), TrainConfig()) != named


def test_a_stage_spec_keeps_a_node_on_disk_here_and_sends_its_examples_to_a_worker(tmp_path: Path) -> None:
    from curriculum.models.chat import ExampleView
    from curriculum.training.stagespec import StageSpec
    from curriculum.training.batches import pool_of

    datasets.Dataset.from_list(SHAREGPT).to_parquet(str(tmp_path / "s.parquet"))
    write_jsonl(tmp_path / "chat.jsonl", CHAT)
    loaded = load_curriculum(_graph(tmp_path, {"s": "s.parquet", "c": "chat.jsonl"}))
    own = examples_from_records(loaded.examples["c"])
    spec = StageSpec(base=TINY, examples=own, replay_pools=[pool_of(loaded.examples["s"])], lora=LoraConfig(),
                     train=TrainConfig(), out_dir=str(tmp_path / "stage"))
    assert isinstance(spec.replay_pools[0], ExampleView)
    wire = StageSpec.model_validate(json.loads(json.dumps(spec.model_dump(mode="json"))))
    assert wire.replay_pools == [examples_from_records(loaded.examples["s"])] and wire.examples == own
