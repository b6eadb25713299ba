"""The README and docs/ stay true to the product.

A newcomer copies commands from the docs and follows their links. A flag renamed in the CLI, a make target
dropped, a page moved or a column renamed in the warehouse would leave the docs lying without any test
noticing, so these checks read the Markdown the way a reader would:

- every `curriculum …` command in a fenced shell block parses against the real typer app (the same click
  parser the command line uses, so unknown commands, unknown options, missing arguments and bad values fail);
  inline `curriculum COMMAND --option` spans in prose name a real command and real options;
- every `make TARGET` names a target of the Makefile;
- every relative link points to a file that exists, and an anchor into a Markdown page to one of its headings;
- the warehouse's SQL examples (each `curriculum sql "…"` in the docs, and any ```sql block) run on a real,
  freshly migrated warehouse file: an empty result is fine, an error is not.

The checkers are plain functions so that the last tests can show each one failing on a made-up command, a
broken link, a missing target and bad SQL: a doc test that cannot fail proves nothing. Nothing here loads a
model or starts Prefect; the module runs in seconds.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer

from curriculum.cli.app import app

try:  # recent typer carries its own copy of click; older ones use click itself
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import UsageError

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SHELL = {"", "bash", "sh", "shell", "console"}  # fenced blocks read as commands; yaml, json, python are not
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```|~~~)(?P<lang>[\w+-]*)\s*$")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
INLINE = re.compile(r"`([^`\n]+)`")
OPERATORS = set("();<>|&")


@dataclass
class Block:
    lang: str
    text: str
    line: int  # 1-based line of the opening fence


def split_markdown(text: str) -> tuple[list[Block], str]:
    """Fenced code blocks (their indent removed, so blocks inside list items count), and the prose with the
    blocks blanked out (line numbers kept) for the link and inline-code checks."""
    blocks, prose, lines = [], [], text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            prose.append(lines[i])
            i += 1
            continue
        indent, fence, start = m["indent"], m["fence"], i
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() != fence:
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        blocks.append(Block(m["lang"].lower(), "\n".join(body), start + 1))
        prose.extend([""] * (i - start + 1))
        i += 1
    return blocks, "\n".join(prose)


def shell_commands(block: str) -> list[list[str]]:
    """The simple commands of a shell block as argument lists: continuation lines joined, quotes spanning
    lines kept together, comments dropped, pipelines and `&`/`;`/`>` split off."""
    out: list[list[str]] = []
    buf = ""
    for line in block.splitlines():
        buf += line
        if buf.endswith("\\"):
            buf = buf[:-1] + " "
            continue
        lex = shlex.shlex(buf, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        lex.commenters = "#"
        try:
            tokens = list(lex)
        except ValueError:  # a quote still open: the string goes on on the next line
            buf += "\n"
            continue
        buf = ""
        command: list[str] = []
        for token in tokens + [";"]:
            if token and set(token) <= OPERATORS:
                if command:
                    out.append(command)
                command = []
            else:
                command.append(token)
    if buf.strip():
        raise ValueError(f"unterminated quote in: {buf.strip()[:80]}")
    return out


def curriculum_args(command: list[str]) -> list[str] | None:
    """The arguments after a `curriculum` executable (`curriculum`, `.venv/bin/curriculum`, after VAR=value
    assignments), or None when the command is something else."""
    words = list(command)
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        words.pop(0)
    if words and Path(words[0]).name == "curriculum":
        return words[1:]
    return None


def parse_cli(args: list[str]) -> dict:
    """Parse a command line with the real click command behind the typer app; return its parameters.
    Raises UsageError (unknown command or option, missing argument, bad value)."""
    group = typer.main.get_command(app)
    root = typer.Context(group, info_name="curriculum")
    if not args:
        raise UsageError("no command", root)
    if args[0].startswith("-"):
        if args == ["--help"]:
            return {}
        raise UsageError(f"unknown option before the command: {args[0]}", root)
    command = group.get_command(root, args[0])
    if command is None:
        raise UsageError(f"no such command '{args[0]}'", root)
    try:
        with command.make_context(args[0], list(args[1:]), parent=root) as ctx:
            return dict(ctx.params)
    except typer.Exit:  # --help
        return {}


def option_names(command) -> set[str]:
    """Every spelling of the command's options (the click command behind a typer command)."""
    return {name for p in command.params if p.param_type_name == "option" for name in (*p.opts, *p.secondary_opts)} | {"--help"}


def command_problems(path: Path, text: str) -> tuple[list[str], list[tuple[str, dict]]]:
    """Problems with the `curriculum` commands of one page, and every command that parsed, with its params."""
    problems, parsed = [], []
    blocks, prose = split_markdown(text)
    for block in blocks:
        if block.lang not in SHELL:
            continue
        try:
            commands = shell_commands(block.text)
        except ValueError as exc:
            problems.append(f"{path.name}:{block.line}: {exc}")
            continue
        for command in commands:
            args = curriculum_args(command)
            if args is None:
                continue
            try:
                parsed.append((" ".join(args), parse_cli(args)))
            except UsageError as exc:
                problems.append(f"{path.name}:{block.line}: curriculum {' '.join(args)}: {exc.format_message()}")
    group = typer.main.get_command(app)
    root = typer.Context(group, info_name="curriculum")
    for lineno, line in enumerate(prose.splitlines(), 1):
        for span in INLINE.findall(line):
            words = span.split()
            if len(words) < 2 or words[0] != "curriculum":
                continue
            name = words[1]
            if name.startswith("-"):
                known = option_names(group)
                flags = [w for w in words[1:] if w.startswith("--")]
            elif name.isupper():  # `curriculum COMMAND --help`: a placeholder, not a command
                continue
            else:
                command = group.get_command(root, name)
                if command is None:
                    problems.append(f"{path.name}:{lineno}: `{span}`: no such command '{name}'")
                    continue
                known = option_names(command)
                flags = [w for w in words[2:] if w.startswith("--")]
            for flag in flags:
                flag = re.match(r"--[\w-]*", flag.strip("[]")).group(0).rstrip("-")
                if flag not in known:
                    problems.append(f"{path.name}:{lineno}: `{span}`: no option {flag}")
    return problems, parsed


def make_targets(makefile: Path) -> set[str]:
    """Targets defined in the Makefile (`name:` at the start of a line, not a `:=` assignment)."""
    return {m.group(1) for m in re.finditer(r"^([A-Za-z0-9_.-]+)[ \t]*:(?!=)", makefile.read_text(), re.MULTILINE)}


def make_problems(path: Path, text: str, targets: set[str]) -> list[str]:
    """`make X` in shell blocks and in inline code must name a target of the Makefile."""
    blocks, prose = split_markdown(text)
    asked = []
    for block in blocks:
        if block.lang in SHELL:
            asked += [c[1:] for c in shell_commands(block.text) if c and c[0] == "make"]
    asked += [span.split()[1:] for span in INLINE.findall(prose) if span.split()[:1] == ["make"]]
    return [f"{path.name}: make {t}: no such target in the Makefile"
            for words in asked for t in words if not t.startswith("-") and "=" not in t and t not in targets]


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings (lower case, punctuation dropped, spaces to dashes,
    repeats numbered), and explicit `id="…"` anchors."""
    _, prose = split_markdown(text)
    seen: dict[str, int] = {}
    out = set(re.findall(r'id="([^"]+)"', prose))
    for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", prose, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def link_problems(path: Path, text: str) -> list[str]:
    """Every relative link resolves to a file or folder; an anchor into a Markdown page names a heading."""
    problems = []
    _, prose = split_markdown(text)
    prose = INLINE.sub("", prose)  # `[x](y)` inside inline code is not a link
    for target in LINK.findall(prose):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:, file:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            problems.append(f"{path.name}: link to {target}: {file_part} does not exist")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text(encoding="utf-8")):
            problems.append(f"{path.name}: link to {target}: no heading #{anchor} in {dest.name}")
    return problems


def sql_examples(paths: list[Path]) -> list[tuple[str, str]]:
    """(page, query) of every `curriculum sql "…"` command and every ```sql block in these pages."""
    out = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        _, parsed = command_problems(path, text)
        out += [(path.name, params["query"]) for args, params in parsed if args.startswith("sql ") and "query" in params]
        out += [(path.name, b.text) for b in split_markdown(text)[0] if b.lang == "sql"]
    return out


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory):
    """A real warehouse file with every migration applied, and no runs in it."""
    from warehouse.db import Warehouse

    wh = Warehouse(tmp_path_factory.mktemp("docs") / "curriculum.duckdb")
    with wh.transaction():
        pass
    return wh


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_commands_parse(path: Path) -> None:
    problems, _ = command_problems(path, path.read_text(encoding="utf-8"))
    assert problems == []


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_make_targets_exist(path: Path) -> None:
    assert make_problems(path, path.read_text(encoding="utf-8"), make_targets(ROOT / "Makefile")) == []


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(path: Path) -> None:
    assert link_problems(path, path.read_text(encoding="utf-8")) == []


def test_the_readme_is_a_front_door() -> None:
    """What the README must show, and what belongs in docs/ instead (it goes stale on the front page)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    assert "make demo" in text and "make test" in text
    for page in ("docs/guide/writing-a-curriculum.md", "docs/guide/policies.md", "docs/guide/warehouse.md",
                 "docs/benchmarks.md"):
        assert f"({page}" in text, page
    assert not re.search(r"\b\d+ tests\b", text), "test counts go stale: keep them out of the README"
    assert not re.search(r"\bcommit [0-9a-f]{7,}\b", text), "commit hashes belong in docs/benchmarks.md"


def test_warehouse_sql_examples_run(warehouse) -> None:
    examples = sql_examples(DOCS)
    assert any(page == "warehouse.md" for page, _ in examples), "docs/guide/warehouse.md shows no SQL"
    failures = []
    for page, query in examples:
        try:
            warehouse.query(query)
        except Exception as exc:  # noqa: BLE001 — any error is a doc that lies
            failures.append(f"{page}: {query[:70]}…: {str(exc).splitlines()[0]}")
    assert failures == []


# The checkers can fail: each catches what it is for.


def test_a_made_up_command_or_option_fails(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    text = ("```bash\n.venv/bin/curriculum frobnicate graphs/hyperwords.yaml\n"
            "curriculum run graphs/hyperwords.yaml --no-such-flag\n"
            "curriculum compare graphs/hyperwords.yaml --seeds three\n"
            "curriculum export RUN_ID\n"
            "curriculum run graphs/hyperwords.yaml --profile demo \\\n    --max-steps 20   # fine\n```\n"
            "Prose: `curriculum run GRAPH --frobnicate` and `curriculum frobnicate`.\n")
    problems, parsed = command_problems(page, text)
    assert [p.split(": ", 1)[1].split(":")[0] for p in problems] == [
        "curriculum frobnicate graphs/hyperwords.yaml", "curriculum run graphs/hyperwords.yaml --no-such-flag",
        "curriculum compare graphs/hyperwords.yaml --seeds three", "curriculum export RUN_ID",
        "`curriculum run GRAPH --frobnicate`", "`curriculum frobnicate`"]
    assert [args for args, _ in parsed] == ["run graphs/hyperwords.yaml --profile demo --max-steps 20"]
    assert parsed[0][1]["max_steps"] == 20


def test_a_quoted_query_over_two_lines_is_one_command() -> None:
    commands = shell_commands('curriculum sql "SELECT 1\n   AS one" --json   # read-only\nmake demo &\n')
    assert commands == [["curriculum", "sql", "SELECT 1\n   AS one", "--json"], ["make", "demo"]]
    assert parse_cli(commands[0][1:])["query"].startswith("SELECT 1")


def test_a_missing_make_target_fails(tmp_path: Path) -> None:
    targets = make_targets(ROOT / "Makefile")
    assert {"demo", "test"} <= targets and "VENV" not in targets
    assert make_problems(tmp_path / "p.md", "```bash\nmake demo\nmake deploy\n```\n", targets) == [
        "p.md: make deploy: no such target in the Makefile"]


def test_a_broken_link_or_anchor_fails(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## Edit the graph and keep going (`--from`)\n")
    page = tmp_path / "page.md"
    text = ("[fine](other.md) [fine](other.md#edit-the-graph-and-keep-going---from) [web](https://example.org/x)\n"
            "[gone](missing.md) [no anchor](other.md#nowhere)\n`[not a link](nowhere.md)`\n"
            "```\n[in code](nowhere.md)\n```\n")
    assert link_problems(page, text) == ["page.md: link to missing.md: missing.md does not exist",
                                         "page.md: link to other.md#nowhere: no heading #nowhere in other.md"]


def test_bad_sql_fails(warehouse) -> None:
    warehouse.query("SELECT node_id, status FROM final_status")
    with pytest.raises(Exception, match="no_such_column"):
        warehouse.query("SELECT no_such_column FROM final_status")
