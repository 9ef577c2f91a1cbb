"""benchmarks.api_load: the interleaving plan, per-round ratios, the report and the load driver."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from benchmarks.api_load import report
from benchmarks.api_load.load import Result, drive, percentile
from benchmarks.api_load.rounds import FLOOR, plan, run_rounds


def result(name: str, rps: float, latency: float = 1.0) -> Result:
    return Result(name, int(rps), 0, 1.0, [latency] * int(rps), {200: int(rps)})


def test_plan_brackets_every_scenario_round_with_floor_rounds_and_rotates():
    order = plan(["resolve", "list", "search"], 5)
    assert len(order) == 5 * 3 * 2 + 1
    assert order[0::2] == [FLOOR] * 16  # floor, x, floor, y, ..., floor
    scenario_rounds = order[1::2]
    assert {name: scenario_rounds.count(name) for name in set(scenario_rounds)} == {"resolve": 5, "list": 5, "search": 5}
    firsts = [scenario_rounds[i * 3] for i in range(5)]
    assert firsts[:3] == ["resolve", "list", "search"]  # the order rotates round to round
    with pytest.raises(ValueError):
        plan([], 5)


def test_each_round_is_compared_with_the_floor_rounds_around_it():
    # The floor drifts from 1000 to 2000 req/s; the scenario always runs at 0.8x the local floor.
    floors = iter([1000, 1200, 1400, 1600, 1800, 2000])
    order = plan(["resolve"], 5)

    def run_one(name, index):
        if name == FLOOR:
            current["floor"] = next(floors)
            return result(FLOOR, current["floor"])
        return result(name, 0.8 * (current["floor"] + current["floor"] + 200) / 2, latency=float(index))

    current = {}
    summaries = run_rounds(order, run_one)
    resolve = summaries["resolve"]
    assert len(resolve.ratios) == 5
    assert resolve.ratio == pytest.approx(0.8, abs=0.002)
    assert resolve.ratio_min == pytest.approx(0.8, abs=0.002) and resolve.ratio_max == pytest.approx(0.8, abs=0.002)
    assert summaries[FLOOR].requests == sum([1000, 1200, 1400, 1600, 1800, 2000])
    assert resolve.p99 == 9.0  # latencies pooled over the rounds (round indexes 1, 3, ..., 9)


def test_median_min_max_over_rounds():
    rates = iter([100, 50, 100, 90, 100, 120, 100, 70, 100, 100, 100])

    def run_one(name, index):
        return result(name, next(rates))

    s = run_rounds(plan(["search"], 5), run_one)["search"]
    assert s.ratios == [0.5, 0.9, 1.2, 0.7, 1.0]
    assert (s.ratio, s.ratio_min, s.ratio_max) == (0.9, 0.5, 1.2)
    assert s.rps == 90


def _summaries(resolve_ratio: float, p99: float, errors: int = 0):
    def run_one(name, index):
        if name == FLOOR:
            return result(FLOOR, 1000)
        r = result(name, 1000 * resolve_ratio, latency=p99)
        r.errors = errors
        return r

    return run_rounds(plan(["resolve", "search"], 5), run_one)


def test_checks_pass_and_fail_on_the_targets():
    good = {label: ok for label, ok, _ in report.checks(_summaries(0.9, 10.0))}
    assert all(good.values()), good
    slow = {label: ok for label, ok, _ in report.checks(_summaries(0.5, 120.0, errors=1))}
    assert not any(slow.values()), slow
    assert "0.90x [0.90, 0.90]" in report.table(_summaries(0.9, 10.0))


def test_two_runs_agree_only_within_their_spread():
    def saved(ratios):
        rates = []
        for r in ratios:
            rates += [100, 100 * r]
        rates.append(100)
        it = iter(rates)
        return report.to_json(run_rounds(plan(["resolve"], len(ratios)), lambda n, i: result(n, next(it))), {})

    first = saved([0.8, 0.9, 1.0, 0.85, 0.95])
    close = saved([0.82, 0.88, 0.99, 0.9, 0.93])
    far = saved([0.5, 0.55, 0.6, 0.52, 0.58])
    assert [ok for _, ok, _ in report.agreement(close, first)] == [True]
    assert [ok for _, ok, _ in report.agreement(far, first)] == [False]
    json.dumps(first)  # what --save writes


def test_percentile_nearest_rank():
    assert percentile(list(range(1, 101)), 0.99) == 100
    assert percentile([5.0], 0.5) == 5.0
    assert percentile([], 0.5) != percentile([], 0.5)  # NaN


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 - the stdlib's name
        status = 404 if self.path.startswith("/missing") else 200
        body = b'{"ok": true}'
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def tiny_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_drive_counts_requests_statuses_and_errors_over_real_http(tiny_server):
    r = drive("x", tiny_server, ["/a", "/b", "/missing"], concurrency=2, total_requests=30, max_seconds=10)
    assert r.requests == 30
    assert r.statuses.get(404, 0) == r.errors > 0
    assert r.statuses.get(200, 0) + r.errors == 30
    assert r.seconds > 0 and r.rps > 0 and len(r.latencies_ms) == 30


def test_fewer_than_five_rounds_are_refused(capsys):
    from benchmarks.api_load.__main__ import parse_args

    assert parse_args(["--rounds", "5"]).rounds == 5
    with pytest.raises(SystemExit):
        parse_args(["--rounds", "4"])
    assert "at least 5" in capsys.readouterr().err
