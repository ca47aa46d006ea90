"""The results: the samples of each workload's rounds, their medians and ratios against the
targets, as text tables and as JSON."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from bench._report import table
from bench.checkpoints.contenders import CONTENDERS, LABELS, Contender
from bench.checkpoints.cost import Work
from bench.checkpoints.workloads import Fixture, GraphWorkload


@dataclass
class GraphResult:
    workload: GraphWorkload
    samples: dict[Contender, list[float]] = field(
        default_factory=lambda: {contender: [] for contender in CONTENDERS}
    )
    cpu: dict[Contender, list[float]] = field(
        default_factory=lambda: {contender: [] for contender in CONTENDERS}
    )  # the process's CPU seconds per operation, each round

    def median(self, contender: Contender) -> float:
        return statistics.median(self.samples[contender])

    @property
    def ratio(self) -> float:
        return self.median("mnemo") / self.median("official")

    @property
    def round_ratios(self) -> list[float]:
        pairs = zip(self.samples["official"], self.samples["mnemo"], strict=True)
        return [mnemo / official for official, mnemo in pairs]

    @property
    def passed(self) -> bool | None:
        return None if self.workload.target is None else self.ratio >= self.workload.target

    def cell(self, contender: Contender) -> str:
        ops_s = self.median(contender)
        if self.workload.unit == "us":
            return f"{1e6 / ops_s:,.0f} µs"
        return f"{ops_s:,.0f}/s"

    def as_json(self) -> dict[str, Any]:
        w = self.workload
        return {
            "workload": w.key,
            "title": w.title,
            "ops_per_round": w.ops,
            **{f"{c}_ops_s": round(self.median(c), 1) for c in CONTENDERS},
            **{f"{c}_us_per_op": round(1e6 / self.median(c), 1) for c in CONTENDERS},
            **{
                f"{c}_cpu_us_per_op": round(1e6 * statistics.median(self.cpu[c]), 1)
                for c in CONTENDERS
            },
            "ratio": round(self.ratio, 4),
            "target": w.target,
            "result": {None: None, True: "PASS", False: "BELOW"}[self.passed],
            "rounds": {
                **{f"{c}_ops_s": [round(x, 1) for x in self.samples[c]] for c in CONTENDERS},
                "ratio": [round(x, 4) for x in self.round_ratios],
            },
        }


@dataclass
class Outcome:
    results: list[GraphResult]
    work: dict[Contender, Work]
    fixture: Fixture


def render(outcome: Outcome) -> str:
    header = (
        "workload",
        "AsyncPostgresSaver",
        "Mnemo",
        "ratio",
        "rounds",
        "target",
        "result",
        "InMemorySaver",
    )
    rows = [
        (
            r.workload.title,
            r.cell("official"),
            r.cell("mnemo"),
            f"{r.ratio:.2f}",
            f"{min(r.round_ratios):.2f}-{max(r.round_ratios):.2f}",
            "-" if r.workload.target is None else f">= {r.workload.target:.1f}",
            {None: "-", True: "PASS", False: "BELOW"}[r.passed],
            r.cell("memory"),
        )
        for r in outcome.results
    ]
    invoke = next(r for r in outcome.results if r.workload.key == "invoke")
    work_header = (
        "per invocation (1 client)",
        "wall ms",
        "client CPU ms",
        "saver calls",
        "statements",
        "transactions",
        "WAL kB",
    )
    work_rows = []
    for contender in CONTENDERS:
        work = outcome.work[contender]
        calls = " + ".join(
            f"{work.calls[m]:g} {m}" for m in ("aget_tuple", "aput", "aput_writes") if work.calls[m]
        )
        work_rows.append(
            (
                LABELS[contender],
                f"{1e3 / invoke.median(contender):.2f}",
                f"{1e3 * statistics.median(invoke.cpu[contender]):.2f}",
                calls,
                "-" if work.statements is None else f"{work.statements:.1f}",
                "-" if work.transactions is None else f"{work.transactions:.1f}",
                "-" if work.wal_bytes is None else f"{work.wal_bytes / 1000:.1f}",
            )
        )
    return "\n\n".join([table(header, rows), table(work_header, work_rows)])


def as_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "median_of": "per contender over the rounds; ratio = Mnemo / official (throughput)",
        "contenders": LABELS,
        "checkpoints_per_invoke": outcome.fixture.checkpoints_per_invoke,
        "long_thread_checkpoints": outcome.fixture.long_checkpoints,
        "results": [result.as_json() for result in outcome.results],
        "per_invoke": {c: outcome.work[c].as_json() for c in CONTENDERS},
    }
