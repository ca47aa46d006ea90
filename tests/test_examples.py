"""The README's Python example runs as written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quickstart_example_runs_and_prints_the_conversation(database_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "examples/quickstart.py"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "1 user      complete 'Weather in Paris?'"
    assert lines[1] == "2 assistant complete '18 °C and sunny.'"
    assert lines[2].startswith("not found: conversation ")


def test_readme_shows_the_quickstart_example_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / "examples" / "quickstart.py").read_text()
    body = example.split("\n\n", 1)[1].split('\n\nif __name__ == "__main__":')[0]
    assert body.strip() in readme


def test_agent_example_pauses_for_a_human_and_resumes(empty_database_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "examples/agent.py"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": empty_database_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "paused: approve a refund of 40 EUR?",
        "done: ['checked a refund of 40 EUR', 'human said yes']",
        "checkpoints: 4",
    ]


def test_readme_shows_the_agent_example_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / "examples" / "agent.py").read_text()
    body = example.split("\n\n", 1)[1].split('\n\nif __name__ == "__main__":')[0]
    assert body.strip() in readme
