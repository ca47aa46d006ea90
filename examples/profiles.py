"""Runtime profiles from Python: a user's LLM profile, activated, then resolved the way code
calling the LLM on every turn should: through a Resolver, cached in the process and dropped on
any change.

Run it with `.venv/bin/python examples/profiles.py` after `make migrate`.
"""

from __future__ import annotations

import asyncio
import secrets

import dal
from dal.gateways import profiles, users
from dal.records.profiles import ProfileDraft, ProfilePatch
from dal.records.users import UserDraft
from dal.settings import Settings
from dal.usecases.profiles import Resolver
from dal.vault import Vault


async def main() -> None:
    settings = Settings()
    vault = Vault.from_settings(settings)  # MNEMO_ENCRYPTION_KEY, else DATA_DIR/encryption-key
    async with dal.connect(settings) as pool:
        user = await users.insert_user(
            pool, draft=UserDraft(username=f"demo-{secrets.token_hex(3)}")
        )
        draft = ProfileDraft(
            kind="llm",
            name="work",
            settings={"provider": "openai", "model": "gpt-4o-mini"},
            secrets={"api_key": "sk-proj-0123456789abcdefa1b2"},
        )
        work = await profiles.insert_profile(pool, vault, user_id=user.id, draft=draft)
        await profiles.activate_profile(pool, user_id=user.id, profile_id=work.id)

        # One per process, its listener running: resolve() on every call costs microseconds.
        async with Resolver(settings, pool, vault).running() as resolver:
            llm = await resolver.resolve(kind="llm", user_id=user.id)
            print(llm.source, llm.settings["model"], len(llm.secrets["api_key"]), "chars of key")
            print("shown as:", llm.effective().secrets)

            patch = ProfilePatch(settings={"provider": "openai", "model": "gpt-4o"})
            await profiles.update_profile(
                pool, vault, user_id=user.id, profile_id=work.id, patch=patch
            )
            # Other processes drop their entries on the change's NOTIFY; this one, at once:
            resolver.forget_scope(user.id)
            print("now:", (await resolver.resolve(kind="llm", user_id=user.id)).settings["model"])


if __name__ == "__main__":
    asyncio.run(main())
