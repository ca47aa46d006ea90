"""docker-compose.yaml, read as Compose reads it (no Docker engine needed): no command needs a
variable set, one image built once, a health check on the app, published on 127.0.0.1 unless
told otherwise. Plus the blank variables Compose passes, which mean unset."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from dal.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_TEXT = (ROOT / "docker-compose.yaml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
MNEMO_SERVICES = ("migrate", "app")

# Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}.
VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """What Compose makes of ``text`` with ``env``; refuses as Compose does on ``:?``/``?``."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        value = env.get(name)
        if op in (":?", "?") and (value is None or (op == ":?" and value == "")):
            raise LookupError(f"{name}: {arg}")
        if op == ":-" and not value:
            return arg
        if op == "-" and value is None:
            return arg
        return value or ""

    return VARIABLE.sub(one, text)


def resolved(env: dict[str, str]) -> Any:
    """The file as Compose sees it with ``env``: parsed first, then each string interpolated."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value) for value in node]
        return interpolate(node, env) if isinstance(node, str) else node

    return walk(COMPOSE)


def test_no_compose_command_needs_a_variable_set() -> None:
    # Compose interpolates the whole file for every command (down, logs, ps...): a required
    # variable (${VAR:?...}) made all of them fail without it.
    for match in VARIABLE.finditer(COMPOSE_TEXT):
        assert match["op"] in (":-", "-"), f"{match[0]} has no default"
    resolved({})  # and with nothing set, nothing is refused


def test_one_image_built_once_and_run_by_both_mnemo_services() -> None:
    services = COMPOSE["services"]
    images = {services[name]["image"] for name in MNEMO_SERVICES}
    assert images == {"mnemo:local"}
    builders = [name for name in services if "build" in services[name]]
    assert builders == ["app"]
    assert services["migrate"]["pull_policy"] == "never"  # it is built here, never pulled
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    app_needs = services["app"]["depends_on"]["migrate"]["condition"]
    assert app_needs == "service_completed_successfully"


def test_services_run_the_mnemo_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["mnemo"] == "app.cli:main"
    services = COMPOSE["services"]
    assert services["migrate"]["command"] == ["mnemo", "migrate"]
    assert services["app"]["command"] == ["mnemo", "serve"]
    assert 'CMD ["mnemo", "serve"]' in (ROOT / "Dockerfile").read_text()


def test_app_has_a_health_check_on_health() -> None:
    check = COMPOSE["services"]["app"]["healthcheck"]
    assert check["test"][0] == "CMD"
    assert "http://127.0.0.1:8000/health" in " ".join(check["test"])
    for key in ("interval", "timeout", "retries", "start_period"):
        assert key in check


@pytest.mark.parametrize(
    ("env", "published"),
    [
        ({}, "127.0.0.1:8000:8000"),
        ({"APP_PORT": "8077"}, "127.0.0.1:8077:8000"),
        ({"APP_HOST": "0.0.0.0"}, "0.0.0.0:8000:8000"),
    ],
)
def test_app_is_published_on_this_machine_only_by_default(
    env: dict[str, str], published: str
) -> None:
    assert resolved(env)["services"]["app"]["ports"] == [published]


def test_an_unset_admin_token_reaches_the_app_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    compose = resolved({})
    passed = compose["services"]["app"]["environment"]["APP_ADMIN_TOKEN"]
    assert passed == ""  # what ${APP_ADMIN_TOKEN:-} gives the container
    monkeypatch.setenv("APP_ADMIN_TOKEN", passed)
    monkeypatch.setenv("DATABASE_URL", "")
    settings = Settings()
    # Unset, so `mnemo serve` generates one into DATA_DIR (the mnemo-data volume), never an
    # empty admin token.
    assert settings.app_admin_token is None
    assert settings.database_url is None
    assert "mnemo-data:/var/lib/mnemo" in compose["services"]["app"]["volumes"]


def test_env_file_stays_out_of_git_and_of_the_image() -> None:
    # The README invites secrets into .env (APP_ADMIN_TOKEN, DATABASE_URL).
    if (ROOT / ".git").exists():
        ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT, check=False)
        assert ignored.returncode == 0, ".env is not in .gitignore"
    assert ".env" in (ROOT / ".dockerignore").read_text().split()
