"""Runtime profiles in the data layer: secrets encrypted at rest (the table holds ciphertext
only), masked in every profile, decrypted only by resolve; one active per kind and scope, even
under concurrent activations; isolation between users and the system; the key and its file."""

from __future__ import annotations

import asyncio
import logging
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from dal.database import open_pool
from dal.errors import Conflict, EncryptionKeyMismatch, InvalidInput, NotFound
from dal.gateways import profiles
from dal.records.profiles import ProfileCopy, ProfileDraft, ProfilePatch, mask
from dal.records.users import User
from dal.settings import Settings
from dal.vault import KEY_FILE, Vault, parse_keys
from tests.dal.conftest import make_user
from tests.test_session_state import SessionRun

API_KEY = "sk-test-0123456789abcdef-a1b2"
OTHER_KEY = "sk-other-9876543210fedcba-z9y8"


def llm(name: str = "main", **secrets: str) -> ProfileDraft:
    return ProfileDraft(
        kind="llm",
        name=name,
        settings={"provider": "openai", "model": "gpt-x", "temperature": 0.5},
        secrets=secrets,
    )


@pytest.fixture
def vault(settings: Settings) -> Vault:
    return Vault.from_settings(settings)


@pytest.fixture(autouse=True)
def no_llm_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("LLM_PROVIDER", "LLM_BASE_URL", "LLM_MODEL", "LLM_API_KEY", "LLM_TEMPERATURE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("LLM_MAX_TOKENS", raising=False)


def test_mask_shows_a_little_of_long_secrets_and_nothing_of_short_ones() -> None:
    assert mask(API_KEY) == "sk-…a1b2"
    assert mask("short-secret") == "…" * 3
    assert mask("x") == "…" * 3


async def test_the_table_holds_ciphertext_only_and_resolve_decrypts(
    pool: Any, vault: Vault, alice: User, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    made = await profiles.insert_profile(pool, vault, user_id=alice.id, draft=llm(api_key=API_KEY))
    assert made.secrets[0].hint == "sk-…a1b2"
    assert API_KEY not in made.model_dump_json()
    stored = await pool.fetchval("SELECT secrets::text FROM profiles WHERE id = $1", made.id)
    assert API_KEY not in stored and "0123456789" not in stored
    cipher = await pool.fetchval(
        "SELECT secrets -> 'api_key' ->> 'ciphertext' FROM profiles WHERE id = $1", made.id
    )
    assert vault.decrypt(cipher) == API_KEY
    await profiles.activate_profile(pool, user_id=alice.id, profile_id=made.id)
    resolved = await profiles.resolve(pool, vault, kind="llm", user_id=alice.id)
    assert (resolved.source, resolved.profile_id) == ("user", made.id)
    assert resolved.secrets == {"api_key": API_KEY}
    assert resolved.settings["model"] == "gpt-x"
    assert API_KEY not in repr(resolved)
    assert resolved.effective().secrets == {"api_key": "sk-…a1b2"}
    listed = await profiles.list_profiles(pool, user_id=alice.id, kind="llm")
    assert API_KEY not in listed.model_dump_json()
    assert API_KEY not in caplog.text


async def test_update_keeps_an_absent_secret_replaces_a_given_one_and_removes_a_null_one(
    pool: Any, vault: Vault, alice: User
) -> None:
    made = await profiles.insert_profile(pool, vault, user_id=alice.id, draft=llm(api_key=API_KEY))
    await profiles.activate_profile(pool, user_id=alice.id, profile_id=made.id)
    renamed = await profiles.update_profile(
        pool, vault, user_id=alice.id, profile_id=made.id, patch=ProfilePatch(name="renamed")
    )
    assert renamed.name == "renamed" and renamed.secrets == made.secrets
    resolved = await profiles.resolve(pool, vault, kind="llm", user_id=alice.id)
    assert resolved.secrets == {"api_key": API_KEY}
    patch = ProfilePatch(secrets={"api_key": OTHER_KEY}, settings={"provider": "p", "model": "m"})
    changed = await profiles.update_profile(
        pool, vault, user_id=alice.id, profile_id=made.id, patch=patch
    )
    assert changed.secrets[0].hint == "sk-…z9y8"
    assert changed.settings["provider"] == "p" and changed.settings["temperature"] is None
    resolved = await profiles.resolve(pool, vault, kind="llm", user_id=alice.id)
    assert resolved.secrets == {"api_key": OTHER_KEY}
    removed = await profiles.update_profile(
        pool,
        vault,
        user_id=alice.id,
        profile_id=made.id,
        patch=ProfilePatch(secrets={"api_key": None}),
    )
    assert removed.secrets == []
    assert (await profiles.resolve(pool, vault, kind="llm", user_id=alice.id)).secrets == {}


async def test_bad_kinds_settings_and_secrets_are_refused(
    pool: Any, vault: Vault, alice: User
) -> None:
    bad = [
        ProfileDraft(kind="nope", name="x"),
        ProfileDraft(kind="llm", name="x", settings={"provider": "p"}),
        ProfileDraft(kind="llm", name="x", settings={"provider": "p", "model": "m", "x": 1}),
        ProfileDraft(
            kind="llm", name="x", settings={"provider": "p", "model": "m", "temperature": 3}
        ),
        ProfileDraft(kind="rsshub", name="x", settings={"base_url": "ftp://x"}),
        ProfileDraft(
            kind="rsshub", name="x", settings={"base_url": "https://r"}, secrets={"api_key": "k"}
        ),
    ]
    for draft in bad:
        with pytest.raises(InvalidInput):
            await profiles.insert_profile(pool, vault, user_id=alice.id, draft=draft)
    await profiles.insert_profile(pool, vault, user_id=alice.id, draft=llm())
    with pytest.raises(Conflict):
        await profiles.insert_profile(pool, vault, user_id=alice.id, draft=llm())
    assert (await profiles.list_profiles(pool, user_id=alice.id)).has_more is False


async def test_profiles_are_isolated_between_users_and_the_system(
    pool: Any, vault: Vault, alice: User, bob: User
) -> None:
    mine = await profiles.insert_profile(pool, vault, user_id=alice.id, draft=llm(api_key=API_KEY))
    system = await profiles.insert_profile(pool, vault, user_id=None, draft=llm())
    assert system.user_id is None
    for user_id, profile_id in ((bob.id, mine.id), (None, mine.id), (alice.id, system.id)):
        with pytest.raises(NotFound):
            await profiles.get_profile(pool, user_id=user_id, profile_id=profile_id)
        with pytest.raises(NotFound):
            await profiles.activate_profile(pool, user_id=user_id, profile_id=profile_id)
        with pytest.raises(NotFound):
            await profiles.update_profile(
                pool, vault, user_id=user_id, profile_id=profile_id, patch=ProfilePatch(name="z")
            )
        with pytest.raises(NotFound):
            await profiles.copy_profile(
                pool, user_id=user_id, profile_id=profile_id, copy=ProfileCopy()
            )
        with pytest.raises(NotFound):
            await profiles.delete_profile(pool, user_id=user_id, profile_id=profile_id)
    assert [p.id for p in (await profiles.list_profiles(pool, user_id=bob.id)).items] == []
    assert [p.id for p in (await profiles.list_profiles(pool, user_id=None)).items] == [system.id]


async def test_resolve_falls_back_from_the_user_to_the_system_to_the_environment(
    pool: Any, vault: Vault, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolved = await profiles.resolve(pool, vault, kind="llm", user_id=alice.id)
    assert (resolved.source, resolved.settings, resolved.secrets) == ("environment", {}, {})
    monkeypatch.setenv("LLM_PROVIDER", "ollama")
    monkeypatch.setenv("LLM_MODEL", "llama")
    monkeypatch.setenv("LLM_TEMPERATURE", "0.2")
    monkeypatch.setenv("LLM_API_KEY", OTHER_KEY)
    resolved = await profiles.resolve(pool, vault, kind="llm", user_id=alice.id)
    assert resolved.source == "environment"
    assert resolved.settings["provider"] == "ollama" and resolved.settings["temperature"] == 0.2
    assert resolved.secrets == {"api_key": OTHER_KEY}
    system = await profiles.insert_profile(pool, vault, user_id=None, draft=llm(api_key=API_KEY))
    await profiles.activate_profile(pool, user_id=None, profile_id=system.id)
    resolved = await profiles.resolve(pool, vault, kind="llm", user_id=alice.id)
    assert (resolved.source, resolved.profile_id, resolved.secrets) == (
        "system",
        system.id,
        {"api_key": API_KEY},
    )
    own = await profiles.insert_profile(pool, vault, user_id=alice.id, draft=llm("own"))
    await profiles.activate_profile(pool, user_id=alice.id, profile_id=own.id)
    resolved = await profiles.resolve(pool, vault, kind="llm", user_id=alice.id)
    assert (resolved.source, resolved.profile_id, resolved.secrets) == ("user", own.id, {})
    rss = await profiles.resolve(pool, vault, kind="rsshub", user_id=alice.id)
    assert rss.source == "environment"


async def test_resolve_uses_the_environment_when_the_database_is_unreachable(
    settings: Settings,
    vault: Vault,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("RSSHUB_BASE_URL", "https://rsshub.example")
    unreachable = settings.model_copy(
        update={
            "database_url": "postgresql://postgres@127.0.0.1:9/none",
            "db_connection_timeout": 2.0,
        }
    )
    pool = await open_pool(unreachable, lazy=True)
    try:
        resolved = await profiles.resolve(pool, vault, kind="rsshub", user_id=UUID(int=7))
    finally:
        await pool.close()
    assert resolved.source == "environment"
    assert resolved.settings == {"base_url": "https://rsshub.example"}
    assert "the database is unavailable" in caplog.text


async def test_concurrent_activations_leave_exactly_one_active(
    pool: Any, vault: Vault, alice: User
) -> None:
    made = [
        await profiles.insert_profile(pool, vault, user_id=alice.id, draft=llm(f"p{i}"))
        for i in range(6)
    ]
    other = await profiles.insert_profile(
        pool,
        vault,
        user_id=alice.id,
        draft=ProfileDraft(kind="rsshub", name="r", settings={"base_url": "https://r"}),
    )
    await profiles.activate_profile(pool, user_id=alice.id, profile_id=other.id)
    for _ in range(5):
        await asyncio.gather(
            *(profiles.activate_profile(pool, user_id=alice.id, profile_id=p.id) for p in made)
        )
        listed = (await profiles.list_profiles(pool, user_id=alice.id, kind="llm")).items
        assert sum(p.active for p in listed) == 1
    rss = await profiles.get_profile(pool, user_id=alice.id, profile_id=other.id)
    assert rss.active  # another kind is left alone


async def test_copy_keeps_settings_and_secrets_inactive(
    pool: Any, vault: Vault, alice: User
) -> None:
    made = await profiles.insert_profile(pool, vault, user_id=alice.id, draft=llm(api_key=API_KEY))
    await profiles.activate_profile(pool, user_id=alice.id, profile_id=made.id)
    copy = await profiles.copy_profile(
        pool, user_id=alice.id, profile_id=made.id, copy=ProfileCopy()
    )
    assert (copy.name, copy.active, copy.settings) == ("main (copy)", False, made.settings)
    assert copy.secrets[0].hint == made.secrets[0].hint
    with pytest.raises(Conflict):
        await profiles.copy_profile(pool, user_id=alice.id, profile_id=made.id, copy=ProfileCopy())
    await profiles.activate_profile(pool, user_id=alice.id, profile_id=copy.id)
    resolved = await profiles.resolve(pool, vault, kind="llm", user_id=alice.id)
    assert (resolved.profile_id, resolved.secrets) == (copy.id, {"api_key": API_KEY})
    await profiles.delete_profile(pool, user_id=alice.id, profile_id=copy.id)
    assert (
        await profiles.resolve(pool, vault, kind="llm", user_id=alice.id)
    ).source == "environment"


async def test_a_wrong_key_is_a_clear_error_naming_the_setting(
    pool: Any, vault: Vault, alice: User, settings: Settings
) -> None:
    made = await profiles.insert_profile(pool, vault, user_id=alice.id, draft=llm(api_key=API_KEY))
    await profiles.activate_profile(pool, user_id=alice.id, profile_id=made.id)
    wrong = Vault.from_settings(
        settings.model_copy(
            update={"mnemo_encryption_key": SecretStr(Fernet.generate_key().decode())}
        )
    )
    with pytest.raises(EncryptionKeyMismatch, match="MNEMO_ENCRYPTION_KEY") as caught:
        await profiles.resolve(pool, wrong, kind="llm", user_id=alice.id)
    assert caught.value.code == "encryption_key_mismatch"
    assert API_KEY not in str(caught.value)
    # The profile itself still reads (hints need no key), and the right key still works.
    assert (await profiles.get_profile(pool, user_id=alice.id, profile_id=made.id)).active
    assert (await profiles.resolve(pool, vault, kind="llm", user_id=alice.id)).secrets


def test_the_key_file_is_made_once_with_mode_0600(settings: Settings) -> None:
    first = Vault.from_settings(settings)
    path = settings.data_dir / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = first.encrypt("a secret")
    assert Vault.from_settings(settings).decrypt(token) == "a secret"
    assert "key file" in first.source


def test_processes_starting_at_once_agree_on_one_key_file(tmp_path: Path) -> None:
    """Two app processes on one DATA_DIR start together (CI caught one reading the other's
    key file before it was written): each process makes its key whole, one wins the name,
    and every process reads the winner's."""
    script = (
        "import sys, time; from pathlib import Path; from dal.vault import key_file\n"
        "start = float(sys.argv[2])\n"
        "while time.time() < start: pass\n"
        "print(key_file(Path(sys.argv[1])).read_text().strip())\n"
    )
    for attempt in range(3):
        data_dir = tmp_path / f"run{attempt}"
        start = str(time.time() + 1.0)
        runs = [
            subprocess.Popen(
                [sys.executable, "-c", script, str(data_dir), start],
                stdout=subprocess.PIPE,
                cwd=Path(__file__).resolve().parents[2],
            )
            for _ in range(6)
        ]
        keys = {run.communicate(timeout=60)[0].decode().strip() for run in runs}
        assert all(run.returncode == 0 for run in runs)
        assert len(keys) == 1 and parse_keys(keys.pop())
        assert [p.name for p in data_dir.iterdir()] == [KEY_FILE]  # no draft left behind


def test_the_configured_key_wins_and_rotation_reads_old_secrets(settings: Settings) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = Vault.from_settings(
        settings.model_copy(update={"mnemo_encryption_key": SecretStr(old)})
    )
    token = before.encrypt("a secret")
    rotated = Vault.from_settings(
        settings.model_copy(update={"mnemo_encryption_key": SecretStr(f"{new}, {old}")})
    )
    assert rotated.decrypt(token) == "a secret"
    assert not (settings.data_dir / KEY_FILE).exists()
    with pytest.raises(ValueError, match="MNEMO_ENCRYPTION_KEY: key 2 is not a Fernet key"):
        parse_keys(f"{new},not-a-key")
    with pytest.raises(ValueError, match="MNEMO_ENCRYPTION_KEY holds no key"):
        parse_keys(" , ")


async def session_exercise(pool: Any, settings: Settings, run: SessionRun) -> None:
    """Profiles, for tests/test_session_state.py."""
    vault = Vault.from_settings(settings)
    user = await run.one("make_user", lambda: make_user(pool))
    made = await run.one(
        "insert_profile",
        lambda: profiles.insert_profile(pool, vault, user_id=user.id, draft=llm(api_key=API_KEY)),
    )
    await run(
        [
            (
                "insert_profile bad",
                lambda: profiles.insert_profile(pool, vault, user_id=user.id, draft=llm(x="y")),
            ),
            (
                "insert_profile taken",
                lambda: profiles.insert_profile(pool, vault, user_id=user.id, draft=llm()),
            ),
            (
                "get_profile",
                lambda: profiles.get_profile(pool, user_id=user.id, profile_id=made.id),
            ),
            ("list_profiles", lambda: profiles.list_profiles(pool, user_id=None, kind="llm")),
            (
                "update_profile",
                lambda: profiles.update_profile(
                    pool,
                    vault,
                    user_id=user.id,
                    profile_id=made.id,
                    patch=ProfilePatch(secrets={"api_key": None}),
                ),
            ),
            (
                "activate_profile",
                lambda: profiles.activate_profile(pool, user_id=user.id, profile_id=made.id),
            ),
            ("resolve", lambda: profiles.resolve(pool, vault, kind="llm", user_id=user.id)),
            (
                "copy_profile",
                lambda: profiles.copy_profile(
                    pool, user_id=user.id, profile_id=made.id, copy=ProfileCopy()
                ),
            ),
            (
                "delete_profile",
                lambda: profiles.delete_profile(pool, user_id=user.id, profile_id=made.id),
            ),
            (
                "delete_profile missing",
                lambda: profiles.delete_profile(pool, user_id=user.id, profile_id=made.id),
            ),
        ]
    )
