"""The README documents what the code accepts."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from srcnet_sim.config import FIELDS, env_name, option_name

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_lists_every_setting_and_its_option():
    text = README.read_text()
    for field in FIELDS:
        assert f"| `{env_name(field)}` | `{option_name(field)}` |" in text, field


def test_readme_opens_with_the_two_commands():
    lines = README.read_text().splitlines()
    block = lines[lines.index("```bash") + 1 : lines.index("```")]
    commands = [line for line in block if line and not line.startswith("#")]
    assert commands == ["python3 -m pip install . && srcnet-sim run --vis", "bash scripts/test.sh"]


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def relative_links(text: str) -> list[str]:
    """The targets of the markdown links `[..](target)` in text that are not web addresses or anchors."""
    targets = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("#"):
            continue  # http(s):, mailto: ...; a link within the page
        targets.append(target.split("#", 1)[0])
    return targets


def test_relative_links_point_to_existing_files():
    root = README.parent
    pages = [README, *sorted((root / "docs").glob("*.md"))]
    broken = [f"{page.relative_to(root)}: {target}"
              for page in pages
              for target in relative_links(page.read_text())
              if not (page.parent / unquote(target)).exists()]
    assert not broken, broken
