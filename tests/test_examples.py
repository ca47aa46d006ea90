"""The README's code runs as shown: each Python block is an example file verbatim and runs as
it stands (copied out of the README), and the curl walkthrough runs, twice, against a real
``mnemo serve``."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support import free_port

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", README, flags=re.M | re.S)


def without_docstring(source: str) -> str:
    """An example as the README shows it: all but its opening docstring."""
    return source.split('"""\n\n', 1)[1]


def run_python(code: str, tmp_path: Path, database_url: str) -> list[str]:
    script = tmp_path / "readme_block.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def readme_block_of(example: str) -> str:
    body = without_docstring((ROOT / "examples" / example).read_text())
    (block,) = [b for b in blocks("python") if b == body]
    return block


def test_readme_python_blocks_are_the_examples_verbatim() -> None:
    shown = blocks("python")
    assert shown, "no Python block in the README"
    bodies = [without_docstring(example.read_text()) for example in EXAMPLES]
    for block in shown:
        assert block in bodies, f"a README block is no example file:\n{block[:300]}"
        # A block that defines main() also runs it, as the file does.
        if "async def main(" in block:
            assert block.endswith('if __name__ == "__main__":\n    asyncio.run(main())\n')
    assert sorted(bodies) == sorted(shown), "an example is missing from the README"


def test_readme_quickstart_block_runs_and_prints_the_conversation(
    database_url: str, tmp_path: Path
) -> None:
    lines = run_python(readme_block_of("quickstart.py"), tmp_path, database_url)
    assert lines[0] == "1 user      complete 'Weather in Paris?'"
    assert lines[1] == "2 assistant complete '18 °C and sunny.'"
    assert lines[2].startswith("not found: conversation ")


def test_readme_attachments_block_stores_sends_reads_and_thumbnails_a_file(
    database_url: str, tmp_path: Path
) -> None:
    lines = run_python(readme_block_of("attachments.py"), tmp_path, database_url)
    assert re.fullmatch(r"hotel\.jpg: image/jpeg, \d+ bytes, at /v1/attachments/\.\.\.", lines[0])
    assert lines[1:4] == [
        "same bytes: True",
        "thumbnail: image/webp, 256x192",
        "sent in the conversation: [('hotel.jpg', 1)]",
    ]
    assert lines[4] == "to collect: 0 files"


def test_readme_agent_block_pauses_for_a_human_and_resumes(
    empty_database_url: str, tmp_path: Path
) -> None:
    lines = run_python(readme_block_of("agent.py"), tmp_path, empty_database_url)
    assert lines == [
        "paused: approve a refund of 40 EUR?",
        "done: ['checked a refund of 40 EUR', 'human said yes']",
        "checkpoints: 4",
    ]


def test_example_files_run_as_documented(database_url: str) -> None:
    # `.venv/bin/python examples/quickstart.py`, as the README says (the file, not the block).
    done = subprocess.run(
        [sys.executable, "examples/quickstart.py"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1] == "2 assistant complete '18 °C and sunny.'"


def curl_walkthrough() -> str:
    section = README.split("## The API, with curl", 1)[1].split("\n## ", 1)[0]
    (walkthrough,) = re.findall(r"^```sh\n(.*?)^```$", section, flags=re.M | re.S)
    return str(walkthrough)


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walkthrough needs curl")
def test_readme_curl_walkthrough_runs_twice_without_an_error(
    database_url: str, tmp_path: Path
) -> None:
    """As a reader does: `make run` (here `mnemo serve` on the test's database, with its own
    DATA_DIR for the admin token), then the block pasted into bash in the project folder
    (here a folder with the same .data/admin-token), twice."""
    port = free_port()
    mine = ("APP_", "DB_", "DATA_DIR", "DATABASE_URL")
    env = {k: v for k, v in os.environ.items() if not k.startswith(mine)}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "mnemo"), "serve"],
            cwd=ROOT,
            env={
                **env,
                "DATABASE_URL": database_url,
                "DATA_DIR": str(tmp_path / ".data"),
                "APP_PORT": str(port),
            },
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "mnemo serve did not answer"
            time.sleep(0.1)

        script = curl_walkthrough()
        assert script.startswith("API=localhost:8000 ")
        script = script.replace("API=localhost:8000 ", f"API=127.0.0.1:{port} ", 1)
        for run in ("first", "second"):
            done = subprocess.run(
                ["bash", "-c", script],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0 and done.stderr == "", f"{run} run: {done.stderr}"
            lines = done.stdout.splitlines()
            answers = [json.loads(line) for line in lines if line.startswith(("{", "["))]
            errors = [a for a in answers if isinstance(a, dict) and "error" in a]
            assert not errors, f"{run} run: {errors}"
            assert answers[0]["status"] == "ok"
            assert lines[-2:] == ["204", "204"], f"{run} run: {lines[-2:]}"
            assert len(answers) == len(lines) - 2, f"{run} run: a line is no JSON: {lines}"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
            raise


def test_readme_tasks_block_retries_a_failure_and_refuses_to_cancel_a_finished_task(
    database_url: str, tmp_path: Path
) -> None:
    lines = run_python(readme_block_of("tasks.py"), tmp_path, database_url)
    assert lines == [
        "EV market: succeeded after 1 attempt(s): {'summary': 'all about EV market'}",
        "flaky: succeeded after 2 attempt(s): {'summary': 'all about flaky'}",
        "cancel refused: illegal task transition: succeeded -> cancelled",
    ]


def test_readme_profiles_block_resolves_through_the_cache_and_sees_a_change(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path / ".data"))  # its key file, not the project's
    lines = run_python(readme_block_of("profiles.py"), tmp_path, database_url)
    assert lines == [
        "user gpt-4o-mini 28 chars of key",
        "shown as: {'api_key': 'sk-…a1b2'}",
        "now: gpt-4o",
    ]
