"""``mnemo profiles``: the system's and a user's runtime profiles from the command line, on a
real database; secrets read from standard input, never echoed, stored encrypted; what the CLI
does is what the HTTP API then shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
from cryptography.fernet import Fernet
from pydantic import SecretStr
from starlette.testclient import TestClient

from app import create_app
from dal.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
MNEMO = str(Path(sys.executable).parent / "mnemo")
SECRET = "sk-cli-Zq8wY3vN5tR1uX7p"


def run(
    *args: str, url: str, data_dir: Path, key: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "DB_", "LLM_"))}
    env = {**clean, "DATABASE_URL": url, "DATA_DIR": str(data_dir), "MNEMO_ENCRYPTION_KEY": key}
    return subprocess.run(
        [MNEMO, *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def answer(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    return json.loads(done.stdout)


def test_profiles_made_by_the_cli_are_what_the_api_resolves(
    database_url: str, settings: Settings, tmp_path: Path
) -> None:
    key = Fernet.generate_key().decode()

    def mnemo(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return run(*args, url=database_url, data_dir=tmp_path, key=key, stdin=stdin)

    user = answer(mnemo("users", "create", "dana"))
    token = user["token"]
    system = answer(
        mnemo(
            "profiles", "create", "llm", "house",
            "--set", "provider=openai", "--set", "model=gpt-4o", "--set", "temperature=0.2",
            "--secret", "api_key", "--activate",
            stdin=SECRET + "\n",
        )
    )  # fmt: skip
    assert system["active"] and system["user_id"] is None
    assert system["settings"]["temperature"] == 0.2  # a JSON value, not the string "0.2"
    assert system["secrets"][0]["hint"] == "sk-…uX7p"
    own = answer(
        mnemo(
            "profiles", "create", "llm", "local", "--user", "dana",
            "--set", "provider=ollama", "--set", "model=llama3",
        )
    )  # fmt: skip
    assert own["user_id"] == user["user"]["id"] and not own["active"]

    # Only ciphertext in the table.
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT secrets::text FROM profiles").fetchall()
    assert stored and all(SECRET not in row[0] for row in stored)

    # The user has no active profile: the system's wins; then theirs, once activated.
    effective = answer(mnemo("profiles", "effective", "llm", "--user", "dana"))
    assert effective["source"] == "system" and effective["secrets"] == {"api_key": "sk-…uX7p"}
    answer(mnemo("profiles", "activate", own["id"], "--user", "dana"))
    app_settings = settings.model_copy(update={"mnemo_encryption_key": SecretStr(key)})
    with TestClient(create_app(app_settings)) as client:
        seen = client.get(
            "/v1/profiles/llm/effective", headers={"Authorization": f"Bearer {token}"}
        ).json()
    assert seen["source"] == "user" and seen["profile_id"] == own["id"]
    assert answer(mnemo("profiles", "effective", "llm", "--user", "dana")) == seen

    # An update without the secret keeps it; --remove-secret removes it.
    renamed = answer(mnemo("profiles", "update", system["id"], "--name", "office"))
    assert renamed["name"] == "office" and renamed["secrets"] == system["secrets"]
    listed = answer(mnemo("profiles", "list", "--kind", "llm"))
    assert [p["name"] for p in listed["items"]] == ["office"]
    cleared = answer(mnemo("profiles", "update", system["id"], "--remove-secret", "api_key"))
    assert cleared["secrets"] == []

    # A user's profile is not the system's, and the other way round.
    missing = mnemo("profiles", "show", own["id"])
    assert missing.returncode == 1 and "not found" in missing.stderr
    answer(mnemo("profiles", "show", own["id"], "--user", "dana"))
    deleted = mnemo("profiles", "delete", own["id"], "--user", "dana")
    assert deleted.returncode == 0 and deleted.stdout == ""
    assert answer(mnemo("profiles", "list", "--user", "dana"))["items"] == []


def test_bad_profile_commands_say_why_and_change_nothing(database_url: str, tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()

    def mnemo(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return run(*args, url=database_url, data_dir=tmp_path, key=key, stdin=stdin)

    llm = ("profiles", "create", "llm", "p", "--set", "provider=openai", "--set", "model=m")
    cases: list[tuple[tuple[str, ...], str, int, str]] = [
        (("profiles", "activate", "not-an-id"), "", 2, "is not a profile id"),
        ((*llm, "--set", "temperature=5"), "", 1, "temperature"),
        ((*llm, "--set", "nonsense"), "", 2, "KEY=VALUE"),
        ((*llm, "--user", "nobody"), "", 1, "nobody"),
        ((*llm, "--secret", "api_key"), "", 2, "no line left"),
        ((*llm, "--secret", "api_key"), "\n", 2, "api_key"),
        ((*llm, "--secret", "password"), SECRET + "\n", 1, "password"),
        (("profiles", "create", "nosuchkind", "p"), "", 1, "kind"),
        (
            ("profiles", "update", "00000000-0000-0000-0000-000000000001"),
            "",
            2,
            "nothing to change",
        ),
        (("profiles", "effective", "nosuchkind"), "", 1, "kind"),
    ]
    for args, stdin, status, said in cases:
        done = mnemo(*args, stdin=stdin)
        assert done.returncode == status, (args, done.stderr)
        assert said in done.stderr and done.stdout == "", (args, done.stderr)
        assert SECRET not in done.stderr
        assert "Traceback" not in done.stderr
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM profiles").fetchone() == (0,)
