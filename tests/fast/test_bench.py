"""The benchmark (./lab bench) without a lab: wrk's and pgbench's recorded
outputs parsed, medians and ratios, targets, the table, the results files
and the PNG; the lab-driving layer against a fake lab that answers with
the recorded wrk outputs."""
import json
import subprocess
from pathlib import Path

import pytest
import yaml

import stackpillar
from stacklab import bench
from stacklab import bench_results as br
from stacklab.config import Settings
from stacklab.topology import load as load_topology
from tests.layouts import EXAMPLE_APPS, LAYOUTS_DIR, REGISTRY, REPO

RECORDED = Path(__file__).parent / "bench"


def recorded(name):
    return (RECORDED / name).read_text()


def run(rps, p50=1.0, p99=10.0, non_2xx=0, errors=0, requests=1000):
    return br.WrkRun(requests, rps, p50, p99, non_2xx, errors)


# --- parsing -----------------------------------------------------------------

def test_wrk_output_becomes_numbers():
    assert br.parse_wrk(recorded("wrk-ok.txt")) == br.WrkRun(
        requests=2546, rps=1271.74, p50_ms=2.52, p99_ms=10.93, non_2xx=0, errors=0)


def test_wrk_counts_responses_outside_2xx_and_3xx():
    got = br.parse_wrk(recorded("wrk-non2xx.txt"))
    assert (got.requests, got.non_2xx, got.errors) == (1617, 1617, 0)


def test_wrk_socket_errors_are_summed_and_microseconds_converted():
    got = br.parse_wrk(recorded("wrk-socket-errors.txt"))
    assert got.errors == 2
    assert got.p50_ms == pytest.approx(0.126)
    assert got.rps == 0.66


def test_wrk_without_results_is_an_error_that_quotes_it():
    with pytest.raises(ValueError, match="unable to connect"):
        br.parse_wrk("unable to connect to 10.77.0.30:8080 Connection refused\n")


@pytest.mark.parametrize("text, ms", [("850.00us", 0.85), ("1.54ms", 1.54), ("2.01s", 2010.0), ("1.00m", 60000.0)])
def test_wrk_latency_units(text, ms):
    assert br.latency_ms(text) == pytest.approx(ms)


def test_pgbench_tps_and_lag_samples():
    assert br.parse_pgbench_tps(recorded("pgbench-stdout.txt")) == pytest.approx(1378.043638)
    samples = br.parse_lag_samples(recorded("lag-sampler-stderr.txt"))
    assert len(samples) == 30 and samples[0] == pytest.approx(0.066365) and samples[-1] == 0
    # Several replicas per sample; a sample without any gives nothing.
    assert br.parse_lag_samples("NOTICE:  lag 1795.5 db2=0.25 db3=0.5\nNOTICE:  lag 1796.1 \n") == [0.25, 0.5]


def test_lag_figures():
    assert br.lag_figures([0.01] * 99 + [2.0]) == {"lag_max_s": 2.0, "lag_p99_s": 0.01, "samples": 100}
    assert br.lag_figures([]) == {"samples": 0}


# --- rounds, medians, ratios -------------------------------------------------------

def test_rounds_alternate_between_stack_and_reference():
    order = []
    def side(name):
        return lambda: order.append(name) or len(order)

    stack, reference = br.interleaved(3, side("A"), side("B"))
    assert order == list("ABABAB")
    assert (stack, reference) == ([1, 3, 5], [2, 4, 6])


def test_medians_of_rounds_and_totals_of_failures():
    got = br.summarize([run(100, p99=30, non_2xx=1), run(300, p99=10, errors=2), run(200, p99=20)])
    assert got == {"rps": 200, "p50_ms": 1.0, "p99_ms": 20, "requests": 3000, "non_2xx": 1, "errors": 2,
                   "rounds": 3}


def test_a_load_row_pairs_stack_with_reference():
    row = br.load_row("static-16k", "16k", [run(600, p99=49)] * 3, [run(1000, p99=5)] * 3)
    assert row.ratio == {"rps": pytest.approx(0.6), "p99_ms": pytest.approx(9.8)}
    assert len(row.rounds["stack"]) == len(row.rounds["reference"]) == 3


def test_no_ratio_without_a_reference():
    row = br.load_row("sustained-healthz", "60 s", [run(1000)], [])
    assert row.reference == {} and row.ratio == {}
    assert br.ratio(1.0, 0) is None


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert (br.percentile(values, 99), br.percentile(values, 50), br.percentile([7], 99)) == (99, 50, 7)


def test_failover_time_runs_from_the_kill_to_the_first_write_after_the_last_failure():
    log = [(1, True), (5.5, False), (6, True), (7, False), (20, False), (25.5, True), (26, True)]
    assert br.failover_seconds(log, killed_at=5) == pytest.approx(20.5)
    assert br.failover_seconds([(6, True)], killed_at=5) == 0.0
    assert br.failover_seconds([(6, False)], killed_at=5) is None
    assert br.writes_back(log, since=5, streak=2) and not br.writes_back(log, since=5, streak=3)


# --- targets and rendering --------------------------------------------------------

def test_targets_say_met_or_by_how_much_they_are_missed():
    row = br.load_row("static-16k", "16k", [run(600, p99=12)], [run(1000, p99=5)])
    assert br.targets_cell(row) == "rps >= 0.75: missed by 0.15; p99_ms <= 3: met"
    assert br.targets_cell(br.skipped_row("failover", "f", "no dcs")) == "-"
    scale_out = next(t for t in br.TARGETS if "scale-out" in t.rows)
    assert br.target_result(br.timing_row("scale-out", "s", {"seconds": None}), scale_out) == "n/a"


def test_the_table_shows_figures_ratios_and_notes():
    rows = [br.load_row("healthz", "/healthz", [run(1144, p50=12.3, p99=66)], [run(733, p99=47)]),
            br.timing_row("convergence", "no-op", {"seconds": 11.0, "changes": 0}, {"seconds": 94.0, "changes": 812}),
            br.skipped_row("failover", "failover", "no Patroni")]
    table = br.markdown_table(rows)
    assert "requests" not in table
    assert "1,144 req/s, p50 12.3 ms, p99 66.0 ms, 0 non-2xx, 0 socket errors" in table
    assert "1.56x req/s, 1.40x p99" in table
    assert "11.0 s, 0 changes | 94.0 s, 812 changes | 0.12x time | seconds <= 0.12: met; changes <= 0: met" in table
    assert "| failover | failover (not measured: no Patroni) | - | - | - | - |" in table
    assert len(table.splitlines()) == 2 + len(rows)


META = {"layout": "three-tier", "release": "trixie", "started": "2026-11-22T12:00:00",
        "machine": {"cpus": 2}, "settings": {"rounds": 3}, "method": "wrk", "warnings": ["fewer than 3 rounds"]}


def fake_rows():
    return [br.load_row("static-16k", "16k", [run(11497, p99=49)] * 3, [run(19123, p99=5)] * 3),
            br.load_row("sustained-healthz", "60 s", [run(1000, non_2xx=3)], []),
            br.timing_row("convergence", "no-op", {"seconds": 11.0, "changes": 0}, {"seconds": 94.0}),
            br.timing_row("replication-lag", "lag", {"lag_p99_s": 0.02, "lag_max_s": 0.3, "samples": 600}),
            br.skipped_row("scale-out", "scale-out", "one app host")]


def test_results_are_written_as_markdown_json_and_png(tmp_path):
    paths = br.write_results(tmp_path / "out", META, fake_rows())
    markdown = paths["markdown"].read_text()
    assert markdown.startswith("# Benchmark: layout three-tier (trixie), 2026-11-22T12:00:00")
    assert "**fewer than 3 rounds**" in markdown and br.markdown_table(fake_rows()) in markdown
    data = json.loads(paths["json"].read_text())
    assert data["layout"] == "three-tier" and [r["id"] for r in data["rows"]][0] == "static-16k"
    assert data["rows"][0]["ratio"]["rps"] == pytest.approx(11497 / 19123)
    png = paths["png"].read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_a_png_even_when_nothing_was_measured(tmp_path):
    path = br.plot_results([br.skipped_row("failover", "f", "no dcs")], tmp_path / "empty.png", "nothing")
    assert path.read_bytes().startswith(b"\x89PNG")


# --- what the lab-driving layer derives ------------------------------------------

def test_app_paths_as_the_django_formula_derives_them():
    apps = yaml.safe_load(EXAMPLE_APPS.read_text())["apps"]
    django = bench.formula_defaults(REPO, "django")
    assert bench.app_paths(apps, django, "demo") == bench.AppPaths(
        "demo", "demo", "/srv/apps/demo/src", "/srv/apps/demo/venv", "/etc/django-apps/demo.env",
        "demoproject.settings", "demoproject.wsgi")


def test_taking_the_app_role_from_a_host_leaves_a_valid_topology():
    text = (LAYOUTS_DIR / "three-tier.sls").read_text()
    checked = stackpillar.check_topology(yaml.safe_load(bench.without_role(text, "app2", "app")), REGISTRY)
    assert checked["hosts"]["app2"]["roles"] == []
    assert checked["hosts"]["app1"]["roles"] == ["app"]


def test_load_and_processes_are_bounded_in_time():
    assert bench.wrk_argv("https://10.77.0.10:443/", 10, 2, 32)[:7] == [
        "wrk", "-t2", "-c32", "-d10s", "--latency", "--timeout", "10s"]
    assert "--property=RuntimeMaxSec=2h" in bench.gunicorn_command(bench.app_paths(
        yaml.safe_load(EXAMPLE_APPS.read_text())["apps"], bench.formula_defaults(REPO, "django"), "demo"))
    script = bench.pgbench_script(60)
    assert "pgbench -n -c 8 -j 2 -T 60 " in script and "FOR i IN 1..600 LOOP" in script
    assert script.splitlines()[-1].endswith(f"dropdb {bench.PGBENCH_DB}")


class FakeLab:
    """What Bench uses of a Lab, with wrk answered from a recording."""

    def __init__(self, tmp_path, layout="three-tier"):
        self.settings = Settings.from_env(cache_dir=tmp_path / "cache")
        self.settings.state_dir = tmp_path / "state"
        self.topology = load_topology(layout, self.settings.layout_dirs, self.settings.pillar_lib)
        self.name, self.release, self.progress = layout, "trixie", lambda line: None
        self.calls = []

    def address(self, host):
        return self.topology.hosts[host].address

    def exec(self, host, cmd, check=False, timeout=600):
        self.calls.append((host, cmd))
        out = recorded("wrk-ok.txt") if isinstance(cmd, list) and cmd[0] == "wrk" else ""
        return subprocess.CompletedProcess(cmd, 0, out, "")


def test_static_rows_run_both_sides_from_the_load_balancer_interleaved(tmp_path):
    lab = FakeLab(tmp_path)
    rows = bench.Bench(lab, bench.Options(only=("static",), out=tmp_path / "out")).run()
    assert [r.id for r in rows] == ["static-16k", "static-200k"]
    assert rows[0].ratio == {"rps": 1.0, "p99_ms": 1.0}
    urls = [cmd[-1] for host, cmd in lab.calls if isinstance(cmd, list)]
    assert {host for host, cmd in lab.calls if isinstance(cmd, list)} == {"lb1"}
    name = "bench-16k.0123456789ab.bin"   # hashed as collectstatic's: the LB may keep it
    lb, media = f"https://10.77.0.10:443/static/{name}", f"http://10.77.0.30:8080/static/{name}"
    # A warm-up of each side, then stack and reference in turn.
    assert urls[:8] == [lb, media, lb, media, lb, media, lb, media]
    assert (tmp_path / "out" / "results.png").is_file() and len(list((tmp_path / "out" / "raw").iterdir())) == 16


def test_rows_a_layout_cannot_measure_say_why(tmp_path):
    lab = FakeLab(tmp_path, "single")
    rows = bench.Bench(lab, bench.Options(only=("scale-out", "replication", "failover"), out=tmp_path / "o")).run()
    assert [(r.id, r.note) for r in rows] == [
        ("replication-lag", "not measured: no Patroni in this layout (no dcs hosts)"),
        ("scale-out", "not measured: needs two app hosts or more"),
        ("failover", "not measured: no Patroni in this layout (no dcs hosts)")]
    assert lab.calls == []


def test_the_bench_verb_hands_its_options_to_the_bench(monkeypatch):
    from stacklab import cli

    seen = {}
    monkeypatch.setattr(cli, "_current", lambda args, progress: seen.setdefault("layout", args.layout))
    monkeypatch.setattr(bench, "main", lambda lab, opts: seen.setdefault("opts", opts) and 0)
    assert cli.main(["bench", "replicated", "--only", "replication", "failover", "--rounds", "5"]) == 0
    assert seen["layout"] == "replicated"
    assert (seen["opts"].only, seen["opts"].rounds, seen["opts"].seconds) == (("replication", "failover"), 5, 10)
    with pytest.raises(SystemExit):
        cli.main(["bench", "--only", "everything"])
