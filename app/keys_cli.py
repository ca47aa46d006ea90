"""``mnemo keys generate`` and ``mnemo keys rotate``: the key that encrypts profiles' secrets
(README "Runtime profiles", "Rotating the encryption key"), rotation through
dal.usecases.profiles with a progress line on stderr (app/transfer_cli.py's) and the totals as
JSON on stdout. No secret is ever printed: a profile whose secret no key decrypts is named by
its id."""

from __future__ import annotations

import asyncio
import sys

import orjson
from cryptography.fernet import Fernet

import dal
from app.transfer_cli import Progress
from dal import embedded
from dal import vault as vault_module
from dal.gateways import profiles as gateway
from dal.settings import Settings
from dal.usecases import profiles
from dal.vault import Vault


def generate(settings: Settings, *, into_key_file: bool) -> int:
    """Print a new random Fernet key (to prepend to MNEMO_ENCRYPTION_KEY), or write it first
    into DATA_DIR/encryption-key (whole, mode 0600, replacing the file in one rename)."""
    key = Fernet.generate_key().decode("ascii")
    if not into_key_file:
        print(key)
        return 0
    if settings.mnemo_encryption_key is not None:
        print(
            "mnemo: MNEMO_ENCRYPTION_KEY is set, so the key file is not used: prepend the "
            "new key there instead (`mnemo keys generate` prints one)",
            file=sys.stderr,
        )
        return 2
    path = vault_module.key_file(settings.data_dir)
    try:
        old = [str(k) for k in path.read_text().strip().split(",") if k.strip()]
        vault_module.parse_keys(",".join(old))
    except ValueError as exc:
        print(f"mnemo: {path}: {exc}", file=sys.stderr)
        return 2
    vault_module.write_key_file(path, ",".join([key, *old]))
    print(f"{path}: a new key first, then the {len(old)} it held", file=sys.stderr)
    return 0


def rotate(settings: Settings, *, batch: int) -> int:
    """Re-encrypt every stored secret with the first configured key; 1 if some did not
    decrypt with any key (their profiles' ids in the totals), else 0."""
    if not 1 <= batch <= 10_000:
        print("mnemo: --batch must be 1 to 10000", file=sys.stderr)
        return 2
    try:
        vault = Vault.from_settings(settings)
    except ValueError as exc:  # a malformed MNEMO_ENCRYPTION_KEY: the message names it
        print(f"mnemo: {exc}", file=sys.stderr)
        return 2

    async def run(url: str) -> profiles.Rotation:
        async with dal.connect(settings.model_copy(update={"database_url": url})) as pool:
            total = await gateway.count_profiles_with_secrets(pool)
            progress = Progress("rotate", total, unit="profiles")
            totals = await profiles.rotate_secrets(
                pool, vault, batch=batch, on_batch=lambda done: progress(done.done)
            )
            progress(totals.done, end=True)
            return totals

    with embedded.held_database(settings) as url:
        try:
            totals = asyncio.run(run(url))
        except (dal.Unavailable, dal.Timeout) as exc:
            print(f"mnemo: the database did not answer: {exc}", file=sys.stderr)
            return 1
    answer = {
        "rotated": totals.rotated,
        "already_current": totals.already_current,
        "failed": [str(profile_id) for profile_id in totals.failed],
        "key": vault.source,
    }
    print(orjson.dumps(answer).decode())
    if totals.failed:
        print(
            f"mnemo: {len(totals.failed)} profile(s) hold a secret no configured key decrypts "
            '(listed under "failed"): add the key they were stored with to '
            "MNEMO_ENCRYPTION_KEY and run again, or set those secrets again",
            file=sys.stderr,
        )
        return 1
    return 0
