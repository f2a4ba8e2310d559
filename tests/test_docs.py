"""The README documents what the code accepts."""

from __future__ import annotations

from pathlib import Path

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
