"""`curriculum generate`: seeded synthetic curricula, checked without a model.

Every answer is recomputed here from the generated text alone (the chain re-resolved from its prompt and the
operations named in graph.yaml's header; the layers world read back from its training data), so a bug in a
generator cannot hide behind the same bug in its check.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curriculum import generators
from curriculum.cli.app import app
from curriculum.generators.chain import ChainSizes
from curriculum.generators.layers import LayersSizes
from curriculum.loading.validate import load_curriculum

SMALL = {"chain": {"depth": 3, "train": 40, "check": 8, "exam": 24},
         "layers": {"people": 16, "towns": 6, "train": 40, "check": 12, "exam": 60}}
DIRECTIONS = ["north", "east", "south", "west"]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def written(tmp_path: Path, family: str, seed: int = 0, **sizes: int) -> Path:
    return generators.write(generators.generate(family, seed, "", **sizes), tmp_path / f"{family}-{seed}")


def node_files(graph: Path) -> dict[str, dict[str, list[dict]]]:
    """node id -> {'train', 'check', 'exam'} -> records, found through the YAML as the product finds them."""
    cur = load_curriculum(graph).spec
    out = {}
    for node_id, node in cur.nodes.items():
        (probe,) = node.probes
        assert probe.kind == "transfer" and probe.items is not None and probe.exam is not None
        out[node_id] = {"train": read_jsonl(graph.parent / node.data), "check": read_jsonl(graph.parent / probe.items),
                        "exam": read_jsonl(graph.parent / probe.exam)}
    return out


@pytest.mark.parametrize("family", ["chain", "layers"])
def test_same_seed_same_bytes_other_seed_other_bytes(family: str, tmp_path: Path) -> None:
    one = generators.generate(family, 3).files()
    assert one == generators.generate(family, 3).files()
    assert one != generators.generate(family, 4).files()
    a = written(tmp_path / "a", family, 5, **SMALL[family])
    b = written(tmp_path / "b", family, 5, **SMALL[family])
    files = sorted(p.relative_to(a.parent) for p in a.parent.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b.parent) for p in b.parent.rglob("*") if p.is_file())
    assert all((a.parent / f).read_bytes() == (b.parent / f).read_bytes() for f in files)


@pytest.mark.parametrize("family", ["chain", "layers"])
def test_defaults_validate_with_sizes_as_promised(family: str, tmp_path: Path) -> None:
    graph = written(tmp_path, family)
    loaded = load_curriculum(graph)  # the product's own loader: schema, files, leakage, token lengths
    sizes = generators.FAMILIES[family][1]()
    files = node_files(graph)
    assert len(files) == (sizes.depth if family == "chain" else 4)
    for node_id, f in files.items():
        assert (len(f["check"]), len(f["exam"])) == (sizes.check, sizes.exam), node_id
        assert sizes.exam >= 200 and sizes.check <= 48
        if node_id != "facts.definition":
            assert len(f["train"]) == sizes.train
        assert loaded.spec.gate_config(node_id).min_score == "auto"
        for item in f["check"] + f["exam"]:
            assert len(item["choices"]) == 4 and len(set(item["choices"])) == 4
        positions = {item["answer"] for item in f["exam"]}
        assert positions == {0, 1, 2, 3}, f"{node_id}: answers must not sit in one position"
    assert loaded.spec.train_config(next(iter(files))).max_steps == sizes.max_steps


@pytest.mark.parametrize("family", ["chain", "layers"])
def test_check_and_exam_are_disjoint_and_nothing_leaks(family: str, tmp_path: Path) -> None:
    files = node_files(written(tmp_path, family, 1, **SMALL[family]))
    train_prompts = {r["prompt"].casefold() for f in files.values() for r in f["train"]}
    for node_id, f in files.items():
        check, exam = ({r["prompt"] for r in f[k]} for k in ("check", "exam"))
        assert len(check) == len(f["check"]) and len(exam) == len(f["exam"]), f"{node_id}: an item twice"
        assert not check & exam, node_id
        assert not {p.casefold() for p in check | exam} & train_prompts, node_id


@pytest.mark.parametrize("turns", [3, 2, 1])
def test_every_chain_answer_resolves_from_its_prompt(turns: int, tmp_path: Path) -> None:
    graph = written(tmp_path, "chain", 2, **SMALL["chain"], turns=turns)
    header = graph.read_text(encoding="utf-8")
    turn = {m.group(1): t for t, what in ((1, "a quarter turn clockwise"), (2, "a half turn"),
                                          (3, "a quarter turn anticlockwise"))
            for m in [re.search(rf"(\w+) = {what}\b", header)] if m}
    assert sorted(turn.values()) == {3: [1, 2, 3], 2: [1, 3], 1: [1]}[turns]
    line = re.compile(r"(\w+) = (?:(north|east|south|west)|(\w+) (\w+))\.")

    def resolve(prompt: str) -> tuple[str, int]:
        value: dict[str, int] = {}
        steps = 0
        for name, root, op, source in line.findall(prompt):
            if root:
                value[name] = DIRECTIONS.index(root)
            else:
                value[name] = (value[source] + turn[op]) % 4
                steps += 1
        asked = re.search(r"Which way is (\w+)\?$", prompt)
        assert asked
        return DIRECTIONS[value[asked.group(1)]], steps

    for node_id, f in node_files(graph).items():
        depth = int(node_id.removeprefix("step"))
        for r in f["train"]:
            assert resolve(r["prompt"]) == (r["answer"], depth)
        for r in f["check"] + f["exam"]:
            assert resolve(r["prompt"]) == (r["choices"][r["answer"]], depth)
    spec = load_curriculum(graph).spec
    assert [spec.nodes[f"step{d}"].requires for d in (1, 2, 3)] == [[], ["step1"], ["step2"]]


def test_every_layers_answer_follows_from_the_training_data(tmp_path: Path) -> None:
    files = node_files(written(tmp_path, "layers", 2, **SMALL["layers"]))
    home = {}
    for r in files["facts.definition"]["train"]:
        m = re.fullmatch(r"(.+) lives in (\w+)\.", r["answer"])
        if m:
            home[m.group(1)] = m.group(2)
    towns = set(home.values())
    law: dict[str, str] = {}
    for r in files["rules.causality"]["train"]:
        (town,) = [t for t in towns if re.search(rf"\b{t}\b", r["prompt"])]
        assert law.setdefault(town, r["answer"]) == r["answer"], "one colour a town"
    assert len(home) == 16 and len(towns) == len(law) == 6

    def named(prompt: str, among) -> list[str]:
        return [x for x in among if x in prompt]

    def right(r: dict) -> str:
        return r["choices"][r["answer"]] if "choices" in r else r["answer"]

    for r in files["facts.definition"]["check"] + files["facts.definition"]["exam"]:
        (person,) = named(r["prompt"], home)
        assert right(r) == home[person]
    for r in files["rules.causality"]["check"] + files["rules.causality"]["exam"]:
        (town,) = [t for t in towns if re.search(rf"\b{t}\b", r["prompt"])]
        assert right(r) == law[town]
    f = files["rules.transfer"]
    for r in f["train"] + f["check"] + f["exam"]:
        found = sorted((m.start(), t) for t in towns for m in re.finditer(rf"\b{t}\b", r["prompt"]))
        assert len(found) == 2 and not named(r["prompt"], home), "a newcomer, between two towns"
        assert right(r) == law[found[-1][1]]
        if "choices" in r:
            assert law[found[0][1]] in r["choices"], "the colour of the town left is always a wrong option"
    f = files["hops.generalization"]
    for r in f["train"] + f["check"] + f["exam"]:
        (person,) = named(r["prompt"], home)
        assert right(r) == law[home[person]]


def test_two_hop_items_ask_about_people_whose_two_hop_pairs_were_never_trained(tmp_path: Path) -> None:
    files = node_files(written(tmp_path, "layers", 0))
    colours = {r["answer"] for r in files["rules.causality"]["train"]}
    people = {m.group(1) for r in files["facts.definition"]["train"] if (m := re.fullmatch(r"(.+) lives in \w+\.", r["answer"]))}
    with_colour = {p for f in files.values() for r in f["train"] if r["answer"] in colours for p in people if p in r["prompt"]}

    def asked(kind: str) -> set[str]:
        return {p for r in files["hops.generalization"][kind] for p in people if p in r["prompt"]}

    check, exam = asked("check"), asked("exam")
    assert check and exam and not check & exam
    assert not (check | exam) & with_colour
    assert len(with_colour) == len(people) // 2  # QA is trained on half the people, as in Physics of LMs 3.1
    trained_facts = {p for r in files["facts.definition"]["train"] for p in people if p in r["prompt"]}
    assert check | exam <= trained_facts, "every examined person's fact was trained (the first hop)"


def test_sizes_are_checked() -> None:
    with pytest.raises(ValueError, match="no size"):
        generators.generate("chain", 0, people=3)
    with pytest.raises(ValueError, match="unknown family"):
        generators.generate("lego", 0)
    with pytest.raises(ValueError, match="only"):
        generators.generate("layers", 0, people=8, exam=500)
    with pytest.raises(ValueError):
        ChainSizes(depth=0)
    with pytest.raises(ValueError, match="turns"):
        ChainSizes(turns=4)
    with pytest.raises(ValueError):
        LayersSizes(towns=2)


def test_the_command_writes_and_refuses_to_overwrite(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "g"
    args = ["generate", "chain", str(out), "--seed", "7", "--size", "depth=2", "--size", "exam=20"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    graph = out / generators.GRAPH_FILE
    before = graph.read_bytes()
    assert b"--size depth=2 --size exam=20" in before and len(read_jsonl(out / "step2" / "exam.jsonl")) == 20
    refused = runner.invoke(app, args)
    assert refused.exit_code == 1 and "--force" in refused.output
    again = runner.invoke(app, [*args, "--force"])
    assert again.exit_code == 0 and graph.read_bytes() == before
    bad = runner.invoke(app, ["generate", "chain", str(tmp_path / "h"), "--size", "depth=x"])
    assert bad.exit_code == 1 and "depth=x" in bad.output
