"""Export and import throughput, and the app's memory during a large export.

The data (``dataset.transfer_plan``, kept like the search data sets): user 0 has one
conversation of ``--transfer-messages`` messages, user 1 as many messages in conversations of
1,000; the same generator as the search data. Each run works on a copy of it (dropped after):
imports add a third user's conversations.

Measured two ways, in this order:
- through the use cases, in this process (``dal.usecases.transfer``): ``export_conversation``
  of the large conversation and ``export_all`` of user 1, read to the end; then
  ``read_documents`` + ``import_conversations`` of what they wrote;
- over HTTP, the app served by uvicorn in a process of its own (``bench/http/serve.py``, as
  the http suite serves it): ``GET /v1/conversations/{id}/export`` and ``GET /v1/export``
  read to the last byte, then both documents ``POST``ed to ``/v1/conversations/import``.
  The server's peak resident memory (VmHWM in ``/proc/<pid>/status``) is read after each
  request; before each, the peak is reset to the current size (``clear_refs``, where the
  kernel allows it), so each figure is the peak of that request alone. The export of one
  1,000-message conversation runs first, for comparison.
Every export is counted (its messages parsed back) and every import's counts checked.
"""

from __future__ import annotations

import asyncio
import importlib
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from bench._report import log, table
from bench._server import database_name
from bench.search import dataset, store
from dal.database import pool_options
from dal.errors import DomainError
from dal.settings import Settings
from tests.support import Databases

TARGET = 50_000.0  # messages/s, export and import alike


@dataclass
class Step:
    key: str
    title: str
    via: str  # "use case" or "HTTP"
    messages: int = 0
    bytes: int = 0
    seconds: float = 0.0
    peak_mib: float | None = None  # the server's peak RSS during the step (HTTP only)
    base_mib: float | None = None  # its RSS before the step
    missing: str | None = None
    error: str | None = None  # the answer of a request that failed
    parse_seconds: float | None = None  # of an import through the use case: read_documents

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    @property
    def target(self) -> float | None:
        return (
            TARGET if self.key in ("export_one", "export_all", "import_one", "import_all") else None
        )

    @property
    def verdict(self) -> str:
        if self.missing:
            return self.missing
        if self.error:
            return f"FAILED ({self.error})"
        if self.target is None:
            return ""
        return "PASS" if self.rate >= self.target else "BELOW"

    def as_json(self) -> dict[str, Any]:
        return {
            "step": self.key,
            "title": self.title,
            "via": self.via,
            "messages": self.messages,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "messages_s": round(self.rate),
            "server_rss_before_mib": self.base_mib,
            "server_peak_mib": self.peak_mib,
            "parse_seconds": None if self.parse_seconds is None else round(self.parse_seconds, 3),
            "target_messages_s": self.target,
            "result": self.verdict,
            "error": self.error,
        }


@dataclass
class Outcome:
    messages: int
    steps: list[Step] = field(default_factory=list)
    dataset: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def passed(self) -> bool:
        return not any(step.verdict.startswith(("BELOW", "FAILED")) for step in self.steps)


def _available() -> str | None:
    try:
        module = importlib.import_module("dal.usecases.transfer")
    except ImportError:
        return "not available yet"
    names = ("export_conversation", "export_all", "read_documents", "import_conversations")
    return None if all(hasattr(module, name) for name in names) else "not available yet"


def _count_messages(data: bytes) -> int:
    """The messages of an export: one document, or NDJSON of several."""
    text = data.strip()
    try:
        return len(orjson.loads(text)["messages"])
    except orjson.JSONDecodeError:
        return sum(len(orjson.loads(line)["messages"]) for line in text.split(b"\n") if line)


@dataclass(frozen=True)
class Fixture:
    url: str
    big: UUID  # user 0's conversation
    small: UUID  # one of user 1's
    owners: tuple[UUID, UUID]
    importer: UUID
    secrets: tuple[str, str, str]  # tokens of user 0, user 1, the importer


async def _fixture(url: str) -> Fixture:
    from dal.gateways import users
    from dal.records.users import UserDraft

    settings = Settings(database_url=url, db_min_connections=1, db_max_connections=2)
    async with asyncpg.create_pool(url, **pool_options(settings)) as pool:
        owners = (dataset.user_id(0), dataset.user_id(1))
        big = await pool.fetchval(
            "SELECT id FROM conversations WHERE user_id = $1 ORDER BY message_count DESC LIMIT 1",
            owners[0],
        )
        small = await pool.fetchval(
            "SELECT id FROM conversations WHERE user_id = $1 ORDER BY id LIMIT 1", owners[1]
        )
        first = await users.insert_token(pool, user_id=owners[0], name="bench")
        second = await users.insert_token(pool, user_id=owners[1], name="bench")
        importer = await users.create_user(pool, draft=UserDraft(username="bench-importer"))
    return Fixture(
        url,
        big,
        small,
        owners,
        importer.user.id,
        (first.secret, second.secret, importer.token.secret),
    )


async def _use_cases(fixture: Fixture, steps: list[Step]) -> dict[str, bytes]:
    transfer = importlib.import_module("dal.usecases.transfer")
    settings = Settings(database_url=fixture.url, db_min_connections=2, db_max_connections=2)
    documents: dict[str, bytes] = {}
    async with asyncpg.create_pool(fixture.url, **pool_options(settings)) as pool:
        for key, title, pieces in (
            (
                "export_one",
                "export one conversation",
                transfer.export_conversation(
                    pool, user_id=fixture.owners[0], conversation_id=fixture.big
                ),
            ),
            (
                "export_all",
                "export all (NDJSON)",
                transfer.export_all(pool, user_id=fixture.owners[1]),
            ),
        ):
            started = time.perf_counter()
            chunks = [piece async for piece in pieces]
            seconds = time.perf_counter() - started
            data = b"".join(chunks)
            documents[key] = data
            steps.append(Step(key, title, "use case", _count_messages(data), len(data), seconds))
        for key, title, source in (
            ("import_one", "import one conversation", "export_one"),
            ("import_all", "import all (NDJSON)", "export_all"),
        ):
            started = time.perf_counter()
            parsed = transfer.read_documents(documents[source])
            parsed_at = time.perf_counter()
            try:
                result = await transfer.import_conversations(
                    pool, user_id=fixture.importer, documents=parsed
                )
            except DomainError as exc:  # e.g. Timeout: the COPY outlived DB_QUERY_TIMEOUT
                seconds = time.perf_counter() - started
                error = f"{type(exc).__name__} after {seconds:.1f} s"
                steps.append(Step(key, title, "use case", seconds=seconds, error=error))
                continue
            seconds = time.perf_counter() - started
            expected = _count_messages(documents[source])
            if result.message_count != expected:
                raise RuntimeError(f"{title}: {result.message_count} of {expected} messages")
            step = Step(key, title, "use case", result.message_count, len(documents[source]))
            step.seconds, step.parse_seconds = seconds, parsed_at - started
            steps.append(step)
    return documents


def _rss(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM of a process, in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    values = {}
    for line in status.splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def _reset_peak(pid: int) -> bool:
    """Set the process's VmHWM back to its VmRSS (Linux: ``echo 5 > clear_refs``)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _request(
    base: str, path: str, secret: str, body: bytes | None = None, kind: str = ""
) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {secret}"}
    if body is not None:
        headers["Content-Type"] = kind
    request = urllib.request.Request(
        base + path, data=body, headers=headers, method="POST" if body is not None else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as answer:
            chunks = []
            while piece := answer.read(1 << 16):
                chunks.append(piece)
            return answer.status, b"".join(chunks)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _http(fixture: Fixture, steps: list[Step], documents: dict[str, bytes]) -> str:
    from bench.http import Server

    server = Server("mnemo", fixture.url, 4)
    pid = server.process.pid
    resets = True
    try:
        status, _ = _request(
            server.base, f"/v1/conversations/{fixture.small}/export", fixture.secrets[1]
        )
        if status in (404, 405):
            steps.append(Step("export_one", "export/import", "HTTP", missing="not available yet"))
            return ""
        plan: list[tuple[str, str, str, str, bytes | None, str]] = [
            (
                "export_small",
                "export a 1,000-message conversation",
                f"/v1/conversations/{fixture.small}/export",
                fixture.secrets[1],
                None,
                "",
            ),
            (
                "export_one",
                "export one conversation",
                f"/v1/conversations/{fixture.big}/export",
                fixture.secrets[0],
                None,
                "",
            ),
            ("export_all", "export all (NDJSON)", "/v1/export", fixture.secrets[1], None, ""),
            (
                "import_one",
                "import one conversation",
                "/v1/conversations/import",
                fixture.secrets[2],
                documents["export_one"],
                "application/json",
            ),
            (
                "import_all",
                "import all (NDJSON)",
                "/v1/conversations/import",
                fixture.secrets[2],
                documents["export_all"],
                "application/x-ndjson",
            ),
        ]
        for key, title, path, secret, body, kind in plan:
            resets = _reset_peak(pid) and resets
            base_mib, _ = _rss(pid)
            started = time.perf_counter()
            status, answer = _request(server.base, path, secret, body, kind)
            seconds = time.perf_counter() - started
            _, peak_mib = _rss(pid)
            if status >= 300:  # e.g. a statement cut by DB_QUERY_TIMEOUT: reported, not fatal
                try:
                    code = orjson.loads(answer)["error"]["code"]
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    code = answer[:100].decode(errors="replace")
                error = f"HTTP {status} {code} after {seconds:.1f} s"
                steps.append(Step(key, title, "HTTP", seconds=seconds, error=error))
                log(f"transfer: {title:<36} HTTP {error}")
                continue
            if body is None:
                messages, size = _count_messages(answer), len(answer)
            else:
                result = orjson.loads(answer)
                messages, size = int(result.get("message_count", 0)), len(body)
                expected = _count_messages(body)
                if messages != expected:
                    raise RuntimeError(f"{title}: {messages} of {expected} messages imported")
            step = Step(
                key, title, "HTTP", messages, size, seconds, round(peak_mib, 1), round(base_mib, 1)
            )
            steps.append(step)
            log(
                f"transfer: {title:<36} HTTP {step.rate:>9,.0f} messages/s, "
                f"server RSS {base_mib:,.0f} MiB, peak {peak_mib:,.0f} MiB"
            )
    finally:
        server.stop()
    if resets:
        return "peak: the server's VmHWM reset to its VmRSS before each request (clear_refs)"
    return "peak: the server's VmHWM since it started (this kernel refused clear_refs)"


def run(server_url: str, args: Any, *, cached: bool) -> Outcome:
    outcome = Outcome(args.transfer_messages)
    why = _available()
    scale = dataset.transfer_scale(args.transfer_messages)
    template, outcome.dataset = asyncio.run(
        store.ensure(
            server_url,
            scale,
            rebuild=args.search_rebuild,
            cached=cached,
            conversations=dataset.transfer_plan(scale),
        )
    )
    try:
        if why:
            outcome.steps.append(Step("export_one", "export and import", "use case", missing=why))
            return outcome
        with Databases(server_url, prefix="mnemo_bench_transfer") as databases:
            name = databases.create(template=database_name(template), label="run")
            try:
                url = databases.url(name)
                fixture = asyncio.run(_fixture(url))
                documents = asyncio.run(_use_cases(fixture, outcome.steps))
                for step in outcome.steps:
                    if step.error:
                        log(f"transfer: {step.title:<36} use case {step.verdict}")
                        continue
                    parse = (
                        f" (read_documents {step.parse_seconds:.2f} s of {step.seconds:.2f} s)"
                        if step.parse_seconds is not None
                        else ""
                    )
                    log(f"transfer: {step.title:<36} use case {step.rate:>9,.0f} messages/s{parse}")
                outcome.note = _http(fixture, outcome.steps, documents)
            finally:
                databases.drop(name)
        return outcome
    finally:
        if not cached:
            store.drop(server_url, scale)


def render(outcome: Outcome) -> str:
    header = (
        "step",
        "via",
        "messages",
        "MiB",
        "seconds",
        "messages/s",
        "server RSS → peak MiB",
        "target",
        "result",
    )
    rows = []
    for step in outcome.steps:
        if step.missing or step.error:
            rows.append(
                (step.title, step.via, "", "", "", "", "", f">= {TARGET:,.0f}/s", step.verdict)
            )
            continue
        rows.append(
            (
                step.title,
                step.via,
                f"{step.messages:,}",
                f"{step.bytes / 2**20:,.1f}",
                f"{step.seconds:.2f}",
                f"{step.rate:,.0f}",
                f"{step.base_mib:,.0f} → {step.peak_mib:,.0f}" if step.peak_mib is not None else "",
                f">= {step.target:,.0f}/s" if step.target else "",
                step.verdict,
            )
        )
    text = table(header, rows)
    return text + (f"\n{outcome.note}" if outcome.note else "")


def as_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "messages": outcome.messages,
        "dataset": outcome.dataset,
        "note": outcome.note,
        "steps": [step.as_json() for step in outcome.steps],
    }
