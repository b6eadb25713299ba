"""Family (b): knowledge in layers, in the style of Physics of Language Models 3.1.

A made-up world: people with made-up names, each living in one made-up town, and a law of every town that
its residents wear cloaks of one colour. Four nodes, one per layer:

- `facts.definition`: where each person lives, trained in several phrasings; probed in phrasings never trained.
- `rules.causality`: the law of each town, trained in some wordings; probed in others.
- `rules.transfer`: the law applied to newcomers never named in training, in situations never trained (someone
  who moved from one town to another wears the colour of the town they live in now: the last town named).
- `hops.generalization`: two hops, a fact then a rule ("What colour is Orla Venn's cloak?"). Trained on half of
  the people; its check and exam items ask only about the other half, whose two-hop pairs never appear in any
  training data (the split of Physics of LMs 3.1: QA trained on half the people, examined on the rest). Check
  people and exam people are disjoint too.

Why this shape: each answer is one word among four, computed from the world, so it is checked exactly and
scored by log-likelihood; the names are made up, so the base model sits at chance until it learns.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from curriculum.generators.common import Generated, GeneratedNode, choice_item, made_up_words, pair

COLOURS = ("red", "blue", "green", "yellow", "white", "black", "grey", "brown", "orange", "purple", "pink", "silver")

# definition: where a person lives
FACT_TRAIN = ("Where does {p} live?", "{p} lives in which town?", "Tell me about {p}.", "What is the home town of {p}?")
FACT_TRAIN_ANSWERS = ("{t}", "{t}", "{p} lives in {t}.", "{t}")
FACT_PROBE = ("Which town is home to {p}?", "In which town does {p} live?", "Name the town where {p} lives.",
              "{p} has a house in one town. Which one?", "Where is the home of {p}?", "Which town does {p} call home?")

# causality: the law of a town, over everyone who lives there
SUBJECTS = ("the people of {t}", "those who live in {t}", "the townsfolk of {t}", "the residents of {t}",
            "the families of {t}", "the citizens of {t}", "all who dwell in {t}", "the households of {t}")
RULE_TRAIN = ("What colour of cloak do {s} wear?", "Which cloak colour is worn by {s}?",
              "By law, cloaks of which colour must {s} wear?")
RULE_PROBE = ("If you meet {s}, what colour will their cloaks be?", "Tell me the colour of the cloaks {s} wear.",
              "What is the required cloak colour for {s}?", "{S} put on their cloaks. What colour are they?",
              "The law of their town sets the colour of the cloaks of {s}. Which colour?")

# transfer: the law applied to a newcomer; the town they live in now is always the last town named
MOVE_TRAIN = ("{n} used to live in {a} and now lives in {b}. What colour of cloak does {n} wear?",
              "{n} has just moved from {a} to {b}. Which cloak colour applies to {n} now?",
              "{n} was born in {a} and settled in {b}. What colour is the cloak of {n}?")
MOVE_PROBE = ("{n} grew up in {a} but has lived in {b} for ten years. What colour of cloak does {n} wear?",
              "After marrying, {n} left {a} to make a home in {b}. Which cloak colour must {n} wear now?",
              "{n}, a weaver born in {a}, now keeps a shop and a house in {b}. What colour is the cloak of {n}?",
              "A newcomer named {n} arrives from {a} and moves into a house in {b}. Which colour of cloak will {n} put on?")

# two hops: a person's cloak, through where they live and that town's law
HOP = ("What colour of cloak does {p} wear?", "Which colour is the cloak of {p}?",
       "{p} is putting on a cloak. What colour is it?", "Name the colour of the cloak {p} wears.",
       "If you saw {p} in the street, what colour would the cloak be?", "What cloak colour does the law require of {p}?",
       "Tell me the colour of the cloak that {p} wears.", "{p} owns one cloak. What colour is it?",
       "Which cloak colour belongs to {p}?", "What is the colour of the cloak of {p}?",
       "{p} wears a cloak every day. In what colour?", "By law, what colour is the cloak of {p}?")


@dataclass(frozen=True)
class LayersSizes:
    """How big a layers curriculum is. Defaults come from the measured runs in the guide's table."""

    people: int = 48  # people with a home town; half train two-hop QA, the other half is examined on it
    towns: int = 8  # towns, each with its cloak colour (at most len(COLOURS))
    train: int = 192  # training pairs of the rule, transfer and two-hop nodes (the fact node trains every phrasing)
    check: int = 24  # check items a node: read after every training round, so few
    exam: int = 200  # exam items a node: read at the start and at the end, never by a decision
    max_steps: int = 40  # every node's budget of optimizer steps

    def __post_init__(self) -> None:
        if not 4 <= self.towns <= len(COLOURS):
            raise ValueError(f"towns must be 4..{len(COLOURS)}: four choices need four colours")
        if self.people < 4 or min(self.train, self.check, self.exam, self.max_steps) < 1:
            raise ValueError("layers sizes: people at least 4, the rest at least 1")


def _take(rng: random.Random, pool: list[str], n: int, what: str) -> list[str]:
    if n > len(pool):
        raise ValueError(f"{what}: {n} asked, only {len(pool)} distinct items can be made at these sizes")
    return rng.sample(pool, n)


def generate(seed: int = 0, sizes: LayersSizes | None = None, command: str = "") -> Generated:
    """The layers curriculum for this seed and these sizes, deterministic to the byte."""
    sizes = sizes or LayersSizes()
    rng = random.Random(seed)
    taken: set[str] = set()
    towns = [w.capitalize() for w in made_up_words(rng, sizes.towns, taken=taken)]
    colour = dict(zip(towns, rng.sample(COLOURS, sizes.towns)))

    def names(n: int) -> list[str]:
        first = made_up_words(rng, n, taken=taken)
        last = made_up_words(rng, n, taken=taken)
        return [f"{a.capitalize()} {b.capitalize()}" for a, b in zip(first, last)]

    people = names(sizes.people)
    home = {p: towns[i % len(towns)] for i, p in enumerate(people)}
    rng.shuffle(people)
    half = len(people) // 2
    trained, held = people[:half], people[half:]  # two-hop QA is trained on `trained` only
    colours = [colour[t] for t in towns]
    town_names = list(towns)

    # definition: every person, every training phrasing
    fact_train = [pair(q.format(p=p), a.format(p=p, t=home[p])) for p in people for q, a in zip(FACT_TRAIN, FACT_TRAIN_ANSWERS)]
    fact_pool = [q.format(p=p) for p in people for q in FACT_PROBE]
    fact_items = _take(rng, fact_pool, sizes.check + sizes.exam, "facts.definition items")
    person_of = {q.format(p=p): p for p in people for q in FACT_PROBE}
    fact_records = [choice_item(rng, q, home[person_of[q]], town_names, 4) for q in fact_items]

    # causality: the law of each town
    def rule_prompts(frames: tuple[str, ...]) -> list[tuple[str, str]]:
        return [(f.format(s=s.format(t=t), S=s.format(t=t)[0].upper() + s.format(t=t)[1:]), t)
                for t in towns for s in SUBJECTS for f in frames]

    rule_train = [pair(q, colour[t]) for q, t in _take_pairs(rng, rule_prompts(RULE_TRAIN), sizes.train, "rules.causality training")]
    rule_items = [choice_item(rng, q, colour[t], colours, 4)
                  for q, t in _take_pairs(rng, rule_prompts(RULE_PROBE), sizes.check + sizes.exam, "rules.causality items")]

    # transfer: newcomers never named anywhere else, moving between two towns
    def moves(frames: tuple[str, ...], n: int) -> list[tuple[str, str, str]]:
        newcomers = names(n)
        out = []
        for who in newcomers:
            a, b = rng.sample(towns, 2)
            out.append((rng.choice(frames).format(n=who, a=a, b=b), a, b))
        return out

    move_train = [pair(q, colour[b]) for q, _, b in moves(MOVE_TRAIN, sizes.train)]
    move_items = [choice_item(rng, q, colour[b], colours, 4, must=[colour[a]]) for q, a, b in moves(MOVE_PROBE, sizes.check + sizes.exam)]

    # two hops: trained on half the people, checked and examined on the other half (check and exam people apart)
    hop_train_pool = [(h.format(p=p), p) for p in trained for h in HOP]
    hop_train = [pair(q, colour[home[p]]) for q, p in _take_pairs(rng, hop_train_pool, sizes.train, "hops training")]
    # check items spread over at least a quarter of the held-out people: on two people, "always say the most
    # frequent colour" would score 0.5 and the auto gate would sit at 0.75 (measured, layers try 1)
    n_check_people = max(-(-sizes.check // len(HOP)), min(sizes.check, len(held) // 4))
    check_people, exam_people = held[:n_check_people], held[n_check_people:]
    hop_check = _take_pairs(rng, [(h.format(p=p), p) for p in check_people for h in HOP], sizes.check, "hops check items")
    hop_exam = _take_pairs(rng, [(h.format(p=p), p) for p in exam_people for h in HOP], sizes.exam, "hops exam items")

    def hop_records(chosen: list[tuple[str, str]]) -> list[dict]:
        return [choice_item(rng, q, colour[home[p]], colours, 4) for q, p in chosen]

    n = sizes.check
    nodes = [
        GeneratedNode("facts.definition", "definition", "where each person lives, in several phrasings", [],
                      fact_train, fact_records[:n], fact_records[n:]),
        GeneratedNode("rules.causality", "causality", "the law of each town: the colour of its residents' cloaks",
                      ["facts.definition"], rule_train, rule_items[:n], rule_items[n:]),
        GeneratedNode("rules.transfer", "transfer", "the law applied to newcomers who moved between towns",
                      ["rules.causality"], move_train, move_items[:n], move_items[n:]),
        GeneratedNode("hops.generalization", "generalization",
                      "two hops, a fact then a law, for people whose two-hop pairs were never trained",
                      ["facts.definition", "rules.causality"], hop_train, hop_records(hop_check), hop_records(hop_exam)),
    ]
    header = [
        "Generated: knowledge in layers (Physics of LMs 3.1 style). Do not edit by hand; regenerate with",
        f"  {command or f'curriculum generate layers OUT --seed {seed}'}",
        f"{sizes.people} people in {sizes.towns} towns; two-hop QA trained on {half} of them, checked on "
        f"{len(check_people)} others and examined on {len(exam_people)} more.",
        f"Per node: {sizes.check} check items, {sizes.exam} exam items (4 choices).",
    ]
    world = {"home": home, "colour": colour, "trained": trained, "check_people": check_people,
             "exam_people": exam_people}
    return Generated(name=f"layers-s{seed}", header=header, nodes=nodes,
                     train={"epochs": 1, "max_steps": sizes.max_steps}, world=world)


def _take_pairs(rng: random.Random, pool: list[tuple[str, str]], n: int, what: str) -> list[tuple[str, str]]:
    if n > len(pool):
        raise ValueError(f"{what}: {n} asked, only {len(pool)} distinct items can be made at these sizes")
    return rng.sample(pool, n)


