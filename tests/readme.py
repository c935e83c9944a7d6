"""README.md as data (marked quickstart blocks, fenced blocks, tables) for the tests that keep it true."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# A fenced block: ``` + info string, body, closing ```; optionally preceded by <!-- quickstart: NAME -->.
_BLOCK = re.compile(
    r"(?:<!-- quickstart: (?P<name>[a-z-]+) -->\n)?^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)


@dataclass(frozen=True)
class Block:
    info: str
    body: str
    quickstart: str | None


def blocks(text: str | None = None) -> list[Block]:
    text = README.read_text() if text is None else text
    return [Block(m["info"].strip(), m["body"], m["name"]) for m in _BLOCK.finditer(text)]


def quickstart(name: str, text: str | None = None) -> str:
    """The body of the block marked `<!-- quickstart: name -->`; exactly one must exist."""
    found = [b for b in blocks(text) if b.quickstart == name]
    assert len(found) == 1, f"README.md needs exactly one block marked <!-- quickstart: {name} -->"
    assert found[0].info == "bash", f"quickstart block {name} must be a ```bash block"
    return found[0].body


def commands(body: str) -> list[str]:
    """The shell commands of a block: lines joined at trailing backslashes, comments and blanks dropped."""
    joined = re.sub(r"\\\n\s*", " ", body)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def section(title: str, text: str | None = None) -> str:
    """The text of the `## title` section, up to the next `## ` heading."""
    text = README.read_text() if text is None else text
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"README.md has no '## {title}' section"
    return match[1]


def table_first_column(text: str) -> list[str]:
    """The first cell of every body row of the Markdown tables in `text`."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    cells = [re.split(r"(?<!\\)\|", row)[1].strip() for row in rows]
    return [c for c in cells if c and not set(c) <= {"-", ":"} and c not in ("metric", "field", "route")]
