"""The benchmark's numbers, without a lab: wrk's and pgbench's output parsed,
rounds reduced to medians, ratios, the issue's targets checked, the table
rendered, the results written (Markdown, JSON, PNG).

Pure functions (tests/fast/test_bench.py); stacklab/bench.py drives the lab.

A row pairs the stack with its reference measured in the same run: the
``stack`` and ``reference`` figures are dicts keyed as in ``FIGURES``, the
``ratio`` dict holds stack / reference per figure.
"""
from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

# wrk prints latencies with these units (its stats.c).
LATENCY_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


@dataclass
class WrkRun:
    """One wrk run: requests, req/s, p50 and p99 (ms), responses outside
    2xx/3xx, socket errors (connect, read, write and timeout together)."""

    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int = 0
    errors: int = 0


def latency_ms(text: str) -> float:
    """A wrk latency ("850.00us", "1.54ms", "2.01s") in milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"not a wrk latency: {text!r}")
    return float(match.group(1)) * LATENCY_MS[match.group(2)]


def _wrk_field(pattern: str, text: str) -> re.Match | None:
    return re.search(pattern, text, re.M)


def parse_wrk(text: str) -> WrkRun:
    """wrk's output (run with --latency) as numbers; ValueError naming
    wrk's own message when it printed no results."""
    total = _wrk_field(r"^\s*(\d+) requests in ", text)
    rps = _wrk_field(r"^Requests/sec:\s+([\d.]+)", text)
    p50 = _wrk_field(r"^\s+50%\s+(\S+)", text)
    p99 = _wrk_field(r"^\s+99%\s+(\S+)", text)
    if not (total and rps and p50 and p99):
        raise ValueError(f"wrk printed no results (run with --latency?): {text.strip()[:300]!r}")
    non_2xx = _wrk_field(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = _wrk_field(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return WrkRun(requests=int(total.group(1)), rps=float(rps.group(1)),
                  p50_ms=latency_ms(p50.group(1)), p99_ms=latency_ms(p99.group(1)),
                  non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
                  errors=sum(map(int, errors.groups())) if errors else 0)


def summarize(runs: list[WrkRun]) -> dict:
    """Rounds of one side: medians of req/s, p50 and p99; totals of
    requests, non-2xx and errors over every round."""
    return {
        "rps": statistics.median(r.rps for r in runs),
        "p50_ms": statistics.median(r.p50_ms for r in runs),
        "p99_ms": statistics.median(r.p99_ms for r in runs),
        "requests": sum(r.requests for r in runs),
        "non_2xx": sum(r.non_2xx for r in runs),
        "errors": sum(r.errors for r in runs),
        "rounds": len(runs),
    }


def ratio(stack: float | None, reference: float | None) -> float | None:
    if stack is None or not reference:
        return None
    return stack / reference


def ratios(stack: dict, reference: dict, keys: tuple[str, ...]) -> dict:
    """stack / reference for each of ``keys`` both sides have."""
    found = {k: ratio(stack.get(k), reference.get(k)) for k in keys if k in stack and k in reference}
    return {k: v for k, v in found.items() if v is not None}


def interleaved(rounds: int, stack: Callable[[], object], reference: Callable[[], object]) -> tuple[list, list]:
    """Each side ``rounds`` times, alternating (stack, reference, stack, ...),
    so a drift of the machine hits both alike."""
    stack_runs, reference_runs = [], []
    for _ in range(rounds):
        stack_runs.append(stack())
        reference_runs.append(reference())
    return stack_runs, reference_runs


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


# --- rows ------------------------------------------------------------------

@dataclass
class Row:
    id: str
    title: str
    stack: dict = field(default_factory=dict)
    reference: dict = field(default_factory=dict)
    ratio: dict = field(default_factory=dict)
    rounds: dict = field(default_factory=dict)   # per round figures: {"stack": [...], "reference": [...]}
    note: str = ""


def load_row(row_id: str, title: str, stack_runs: list[WrkRun], reference_runs: list[WrkRun],
             note: str = "") -> Row:
    """A row from wrk rounds of both sides (no reference: an empty list)."""
    stack = summarize(stack_runs)
    reference = summarize(reference_runs) if reference_runs else {}
    return Row(row_id, title, stack, reference, ratios(stack, reference, ("rps", "p99_ms")),
               {"stack": [asdict(r) for r in stack_runs], "reference": [asdict(r) for r in reference_runs]},
               note)


def timing_row(row_id: str, title: str, stack: dict, reference: dict | None = None, note: str = "") -> Row:
    """A row of durations (seconds) and counts."""
    reference = reference or {}
    return Row(row_id, title, stack, reference, ratios(stack, reference, ("seconds",)), note=note)


def skipped_row(row_id: str, title: str, why: str) -> Row:
    return Row(row_id, title, note=f"not measured: {why}")


def lag_figures(samples: list[float]) -> dict:
    """Replication lag samples (seconds) as max, p99 and their count."""
    if not samples:
        return {"samples": 0}
    return {"lag_max_s": max(samples), "lag_p99_s": percentile(samples, 99), "samples": len(samples)}


def parse_lag_samples(text: str) -> list[float]:
    """Every replica's replay lag from the sampler's notices
    ("NOTICE:  lag <epoch> <replica>=<seconds> ..."); a sample without
    replicas gives none."""
    values = []
    for line in text.splitlines():
        match = re.search(r"\blag [\d.]+((?: \S+=[\d.]+)*)\s*$", line)
        if match:
            values += [float(pair.rsplit("=", 1)[1]) for pair in match.group(1).split()]
    return values


def parse_pgbench_tps(text: str) -> float | None:
    match = re.search(r"^tps = ([\d.]+)", text, re.M)
    return float(match.group(1)) if match else None


def writes_back(log: list[tuple[float, bool]], since: float, streak: int = 20) -> bool:
    """The last ``streak`` writes started after ``since`` all succeeded."""
    after = [ok for t, ok in log if t > since]
    return len(after) >= streak and all(after[-streak:])


def failover_seconds(log: list[tuple[float, bool]], killed_at: float) -> float | None:
    """From a write log [(seconds since start, acknowledged)], the time from
    the kill until the first acknowledged write after the last failed one
    (0 when none failed; None when writes never came back)."""
    after = [(t, ok) for t, ok in log if t > killed_at]
    failed = [t for t, ok in after if not ok]
    if not failed:
        return 0.0
    back = [t for t, ok in after if ok and t > failed[-1]]
    return back[0] - killed_at if back else None


# --- targets (issue 12) -----------------------------------------------------

@dataclass(frozen=True)
class Target:
    rows: tuple[str, ...]
    side: str          # "stack" or "ratio"
    key: str
    op: str            # "<=", ">=" or "<"
    limit: float
    text: str


TARGETS = (
    Target(("static-16k", "static-200k"), "ratio", "rps", ">=", 0.75, "static through the LB >= 0.75x direct"),
    Target(("static-16k", "static-200k"), "ratio", "p99_ms", "<=", 3.0, "static p99 <= 3x direct's"),
    Target(("cached",), "ratio", "rps", ">=", 2.0, "cached page through LB -> uWSGI >= 2x gunicorn's default"),
    Target(("cached",), "ratio", "p99_ms", "<=", 0.6, "cached page p99 <= 0.6x gunicorn's"),
    Target(("sustained-cached",), "stack", "non_2xx", "<=", 0, "cached page held 60 s with 0 non-2xx"),
    Target(("convergence",), "ratio", "seconds", "<=", 0.12, "no-op re-apply <= 0.12x the first deploy"),
    Target(("convergence",), "stack", "changes", "<=", 0, "no-op re-apply with 0 changes"),
    Target(("scale-out",), "stack", "seconds", "<=", 120, "a new app host in rotation within one orchestrate "
                                                          "run, under 2 minutes with warm caches"),
    Target(("replication-lag",), "stack", "lag_p99_s", "<", 1.0, "replication lag p99 under 1 s"),
)

OPS = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b}


def target_result(row: Row, target: Target) -> str:
    """"met", "missed by N" or "n/a" (the figure was not measured)."""
    value = getattr(row, target.side).get(target.key)
    if value is None:
        return "n/a"
    if OPS[target.op](value, target.limit):
        return "met"
    return f"missed by {abs(value - target.limit):.3g}"


def targets_cell(row: Row) -> str:
    found = [f"{t.key} {t.op} {t.limit:g}: {target_result(row, t)}" for t in TARGETS if row.id in t.rows]
    return "; ".join(found) or "-"


# --- rendering ---------------------------------------------------------------

# Figure key -> how a table cell shows it, in this order.
FIGURES = {
    "rps": "{:,.0f} req/s",
    "p50_ms": "p50 {:.1f} ms",
    "p99_ms": "p99 {:.1f} ms",
    "non_2xx": "{:,} non-2xx",
    "errors": "{:,} socket errors",
    "seconds": "{:.1f} s",
    "changes": "{} changes",
    "orchestrate_s": "orchestrate {:.1f} s",
    "tps": "{:,.0f} tps",
    "lag_max_s": "lag max {:.3f} s",
    "lag_p99_s": "lag p99 {:.3f} s",
    "samples": "{} samples",
    "failed_writes": "{} failed writes",
}
RATIOS = {"rps": "{:.2f}x req/s", "p99_ms": "{:.2f}x p99", "seconds": "{:.2f}x time"}


def format_figures(figures: dict) -> str:
    shown = [fmt.format(figures[key]) for key, fmt in FIGURES.items() if figures.get(key) is not None]
    return ", ".join(shown) or "-"


def format_ratio(found: dict) -> str:
    return ", ".join(fmt.format(found[key]) for key, fmt in RATIOS.items() if key in found) or "-"


def markdown_table(rows: list[Row]) -> str:
    lines = ["| row | what | stack | reference | ratio | targets |", "|---|---|---|---|---|---|"]
    for r in rows:
        what = f"{r.title} ({r.note})" if r.note else r.title
        lines.append(f"| {r.id} | {what} | {format_figures(r.stack)} | {format_figures(r.reference)} | "
                     f"{format_ratio(r.ratio)} | {targets_cell(r)} |")
    return "\n".join(lines)


def markdown_report(meta: dict, rows: list[Row]) -> str:
    """The results file: what ran where and how, then the table."""
    settings = ", ".join(f"{k} {v}" for k, v in meta.get("settings", {}).items())
    machine = ", ".join(f"{k} {v}" for k, v in meta.get("machine", {}).items())
    head = [f"# Benchmark: layout {meta.get('layout')} ({meta.get('release')}), {meta.get('started')}", "",
            f"- machine: {machine}", f"- settings: {settings}", f"- method: {meta.get('method', '')}"]
    warnings = [f"- **{w}**" for w in meta.get("warnings", [])]
    return "\n".join(head + warnings + ["", markdown_table(rows), ""])


def results_json(meta: dict, rows: list[Row]) -> str:
    return json.dumps({**meta, "rows": [asdict(r) for r in rows]}, indent=2, sort_keys=False) + "\n"


# --- the plot ----------------------------------------------------------------

# Panels of the PNG: one figure each, stack and reference side by side per row.
PANELS = (("rps", "requests/s"), ("p99_ms", "p99 latency (ms)"), ("seconds", "seconds"),
          ("lag_p99_s", "replication lag p99 (s)"))


def _bars(ax, key: str, label: str, rows: list[Row]) -> None:
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r.stack[key] for r in rows], 0.4, label="stack")
    ax.bar([x + 0.2 for x in xs], [r.reference.get(key, math.nan) for r in rows], 0.4, label="reference")
    ax.set_xticks(list(xs), [r.id for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(label)
    ax.legend(fontsize=8)


def plot_results(rows: list[Row], path: Path, title: str) -> Path:
    """A PNG (matplotlib's Agg canvas: no display) with a panel per figure
    any row has."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [(key, label, [r for r in rows if r.stack.get(key) is not None]) for key, label in PANELS]
    panels = [p for p in panels if p[2]]
    fig = Figure(figsize=(4.5 * max(1, len(panels)), 4.5))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, max(1, len(panels)), squeeze=False)[0]
    for ax, (key, label, panel_rows) in zip(axes, panels):
        _bars(ax, key, label, panel_rows)
    if not panels:
        axes[0].text(0.5, 0.5, "no figures measured", ha="center", va="center")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def write_results(out: Path, meta: dict, rows: list[Row]) -> dict[str, Path]:
    """results.md, results.json and results.png in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "results.md", "json": out / "results.json", "png": out / "results.png"}
    paths["markdown"].write_text(markdown_report(meta, rows))
    paths["json"].write_text(results_json(meta, rows))
    plot_results(rows, paths["png"], f"{meta.get('layout')} ({meta.get('release')}), {meta.get('started')}")
    return paths
