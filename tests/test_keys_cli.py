"""``mnemo keys`` end to end, as an operator runs it (the console script in a subprocess):
rotation to the first key of MNEMO_ENCRYPTION_KEY with progress on stderr and the totals on
stdout, a profile whose secret no key reads named by its id (never a secret printed), a re-run
that finds everything current; and the key file's own rotation (``generate
--prepend-to-key-file``)."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet
from pydantic import SecretStr

from dal.gateways import profiles
from dal.settings import Settings
from dal.vault import KEY_FILE, Vault
from tests.dal.conftest import make_user
from tests.dal.test_profile_usecases import ciphertexts, llm, under
from tests.test_cli import mnemo

SECRET = "sk-rotate-0123456789abcdef-q7r8"  # llm()'s
OLD, NEW, LOST = (Fernet.generate_key().decode() for _ in range(3))


def vault_of(settings: Settings, keys: str) -> Vault:
    return Vault.from_settings(
        settings.model_copy(update={"mnemo_encryption_key": SecretStr(keys)})
    )


async def test_keys_rotate_reencrypts_reports_and_resumes(
    pool: Any, settings: Settings, database_url: str, tmp_path: Path
) -> None:
    old = vault_of(settings, OLD)
    for number in range(3):
        user = await make_user(pool)
        await profiles.insert_profile(pool, old, user_id=user.id, draft=llm(f"p{number}"))
    lost = await profiles.insert_profile(
        pool, vault_of(settings, LOST), user_id=None, draft=llm("lost")
    )
    env = {"DATABASE_URL": database_url, "DATA_DIR": str(tmp_path)}
    env["MNEMO_ENCRYPTION_KEY"] = f"{NEW},{OLD}"
    done = mnemo("keys", "rotate", "--batch", "2", env=env)
    assert done.returncode == 1, done.stderr
    totals = orjson.loads(done.stdout)
    assert totals["rotated"] == 3 and totals["already_current"] == 0
    assert totals["failed"] == [str(lost.id)]
    assert totals["key"] == "MNEMO_ENCRYPTION_KEY"
    assert "rotate: [" in done.stderr and "4/4 profiles" in done.stderr
    for output in (done.stdout, done.stderr):
        assert SECRET not in output and NEW not in output and OLD not in output
    tokens = await ciphertexts(pool)
    assert sum(under(NEW, token) for token in tokens.values()) == 3
    again = mnemo("keys", "rotate", env=env)
    assert orjson.loads(again.stdout)["already_current"] == 3
    assert orjson.loads(again.stdout)["rotated"] == 0


async def test_the_key_files_rotation_prepends_a_key_then_rotates_to_it(
    pool: Any, settings: Settings, database_url: str, tmp_path: Path
) -> None:
    key_file = tmp_path / KEY_FILE
    key_file.write_text(OLD + "\n")
    key_file.chmod(0o600)
    user = await make_user(pool)
    await profiles.insert_profile(pool, vault_of(settings, OLD), user_id=user.id, draft=llm("a"))
    env = {"DATABASE_URL": database_url, "DATA_DIR": str(tmp_path), "MNEMO_ENCRYPTION_KEY": ""}
    printed = mnemo("keys", "generate", env=env)
    assert printed.returncode == 0
    Fernet(printed.stdout.strip())  # a valid key, printed only
    assert key_file.read_text().strip() == OLD
    prepended = mnemo("keys", "generate", "--prepend-to-key-file", env=env)
    assert prepended.returncode == 0, prepended.stderr
    assert prepended.stdout == ""  # the new key is not printed
    new, kept = key_file.read_text().strip().split(",")
    assert kept == OLD and new != OLD
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    done = mnemo("keys", "rotate", env=env)
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["rotated"] == 1
    assert all(under(new, token) for token in (await ciphertexts(pool)).values())
    refused = mnemo(
        "keys", "generate", "--prepend-to-key-file", env={**env, "MNEMO_ENCRYPTION_KEY": NEW}
    )
    assert refused.returncode == 2 and "MNEMO_ENCRYPTION_KEY is set" in refused.stderr
