"""The documentation stays true: the generated config table, relative links, and the commands it shows."""

from __future__ import annotations

import io
import re
import shlex
import unicodedata
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from nlp_transfer.cli import main
from nlp_transfer.config import load_config
from nlp_transfer.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.glob("*.md")), *sorted(DOCS.glob("*/*.md"))]
PAGE_IDS = [str(p.relative_to(REPO)) for p in PAGES]

# pages other engineers write: linked from these docs, expected to exist, not generated here
EXPECTED_PAGES = {"docs/architecture.md"}

FENCE = re.compile(r"^(```|~~~)")
LINK = re.compile(r"(?<!\!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
INLINE_CODE = re.compile(r"`([^`]+)`")
COMMAND_PREFIXES = ("python recipes/", "nlp-transfer train")
CONFIG_PATH = re.compile(r"recipes/(?:configs|accelerate)/[\w./-]+\.yaml")


def split_page(text: str) -> tuple[list[str], list[str]]:
    """The page's prose lines (fenced code removed) and its fenced code lines."""
    prose, code, fenced = [], [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        (code if fenced else prose).append(line)
    return prose, code


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = INLINE_CODE.sub(r"\1", heading.strip()).lower()
    text = "".join(ch for ch in text if ch in "-_ " or unicodedata.category(ch)[0] in "LN")
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    prose, _ = split_page(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for line in prose:
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = github_anchor(match.group(1))
            anchor, n = base, 1
            while anchor in found:
                anchor, n = f"{base}-{n}", n + 1
            found.add(anchor)
    return found


def relative_links(page: Path) -> list[tuple[str, str]]:
    """(target path, fragment) of every relative link in the page's prose."""
    prose, _ = split_page(page.read_text(encoding="utf-8"))
    text = "\n".join(INLINE_CODE.sub("", line) for line in prose)
    links = []
    for match in LINK.finditer(text):
        target = match.group(1) or match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        links.append((path, fragment))
    return links


def command_lines(page: Path) -> list[tuple[str, bool]]:
    """(command, shown failing) for each command line in the page: lines of fenced code (continuations
    joined; a command whose next line starts with ``error:`` is an example of an error) and inline code spans."""
    prose, code = split_page(page.read_text(encoding="utf-8"))
    commands: list[tuple[str, bool]] = []
    pending = ""
    for line in code:
        line = line.strip()
        if line.startswith("error:") and commands:
            commands[-1] = (commands[-1][0], True)
            continue
        if line.startswith("$ "):
            line = line[2:]
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        commands.append((pending + line, False))
        pending = ""
    for line in prose:
        commands.extend((match.group(1).strip(), False) for match in INLINE_CODE.finditer(line))
    # "pip install ... && python recipes/..." holds a command after the "&&"
    commands = [(part.strip(), e) for c, e in commands for part in c.split(" && ")]
    # a bare "`nlp-transfer train`" in prose names the verb; a command line has arguments after it
    return [(c, e) for c, e in commands if c.startswith(COMMAND_PREFIXES) and c != "nlp-transfer train"]


def test_pages_are_found():
    names = set(PAGE_IDS)
    assert {"README.md", "docs/index.md", "docs/config.md", "docs/tasks/ner.md", "docs/strategies/lora.md"} <= names


def test_docs_config_reference_matches_the_code():
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        assert main(["config", "--markdown"]) == 0
    reference = (DOCS / "config.md").read_text(encoding="utf-8")
    assert buffer.getvalue().strip() in reference, "regenerate docs/config.md's table with: nlp-transfer config --markdown"


def test_readme_links_to_the_config_reference():
    assert "(docs/config.md)" in (REPO / "README.md").read_text(encoding="utf-8")


def test_readme_keeps_the_ci_command():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert ci in (REPO / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_relative_links_point_to_existing_files(page):
    broken, awaited = [], set()
    for path, fragment in relative_links(page):
        target = (page.parent / path).resolve() if path else page
        shown = f"{path}#{fragment}" if fragment else path
        if not target.exists():
            relative = str(target.relative_to(REPO)) if target.is_relative_to(REPO) else str(target)
            if relative in EXPECTED_PAGES:
                awaited.add(relative)
            else:
                broken.append(f"{shown}: {relative} does not exist")
        elif fragment and target.suffix == ".md" and fragment not in anchors(target):
            broken.append(f"{shown}: no heading with anchor #{fragment} in {target.relative_to(REPO)}")
    assert broken == []
    if awaited:  # every other link is fine; the page itself is still being written elsewhere
        pytest.xfail(f"not written yet: {', '.join(sorted(awaited))}")


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_commands_name_existing_valid_configs(page):
    problems = []
    for command, shown_failing in command_lines(page):
        words = [w for w in shlex.split(command, comments=True) if not w.startswith("-")]
        # python recipes/X.py CONFIG ... | nlp-transfer train CONFIG ...
        if words[0] == "python" and not (REPO / words[1]).is_file():
            problems.append(f"{command}: {words[1]} does not exist")
        args = words[2:]
        if not args:
            problems.append(f"{command}: names no config")
            continue
        config, overrides = args[0], [w for w in args[1:] if "=" in w]
        if not (REPO / config).is_file():
            problems.append(f"{command}: {config} does not exist")
            continue
        try:
            load_config(REPO / config, overrides)
        except ConfigError as err:
            if not shown_failing:
                problems.append(f"{command}: {err}")
        else:
            if shown_failing:
                problems.append(f"{command}: shown with an error, but the config loads")
    assert problems == []


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_config_paths_mentioned_exist(page):
    text = page.read_text(encoding="utf-8")
    missing = sorted({p for p in CONFIG_PATH.findall(text) if not (REPO / p).is_file()})
    assert missing == []


def test_every_shipped_config_is_documented():
    text = "\n".join(p.read_text(encoding="utf-8") for p in PAGES)
    configs = sorted((REPO / "recipes" / "configs").glob("*/*.yaml"))
    assert [p.name for p in configs if p.name not in text] == []


def test_link_checker_sees_links_and_anchors(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# Top `code` --resume\n[a](other.md#x) [b](https://example.org) `[c](not-a-link.md)`\n"
        "```\n[d](in-code.md)\npython recipes/x.py a.yaml \\\n  k=v\n```\n",
        encoding="utf-8",
    )
    assert relative_links(page) == [("other.md", "x")]
    assert anchors(page) == {"top-code---resume"}
    assert command_lines(page) == [("python recipes/x.py a.yaml  k=v", False)]
