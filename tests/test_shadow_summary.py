"""experiments/shadow.py on a real Prometheus scraping the shadow comparator, itself run between two stand-in vLLM
servers of known behaviour: a shadow slower by 0.3 s, longer by a known number of tokens, refusing two sampled
requests and rephrasing two greedy ones. Every expected value below is worked out by hand from those answers."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest
import yaml
from llmplane.experiments import shadow
from llmplane.experiments.prometheus import Client
from llmplane.toolchain import prerequisites
from llmplane.toolchain.localstack import LOOPBACK, Server, free_port, wait_until

from tests.shadow_arms import MODEL, SHADOW, Comparator, Reply, both, start

SAME = "Paris is the capital of France and its largest city"
SAT, LAY = "The cat sat on the mat.", "the cat lay on the mat"
HELPS, REFUSES = "Sure: open Settings then Reset", "I can't help with that"
"""Tokens: HELPS [sure open settings then reset], REFUSES [i can t help with that], no word in common."""


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[shadow.ShadowSummary]:
    work = tmp_path_factory.mktemp("shadow-summary")
    comparator = start(work)
    port = free_port()
    config = work / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{"job_name": "shadow-compare", "static_configs": [
            {"targets": [comparator.metrics.removeprefix("http://")]}]}]}))
    prometheus = Server("prometheus", [str(prerequisites.binary("prometheus")), f"--config.file={config}",
                                       f"--storage.tsdb.path={work / 'data'}",
                                       f"--web.listen-address={LOOPBACK}:{port}", "--log.level=warn"],
                        work, f"http://{LOOPBACK}:{port}", "/-/ready")
    try:
        prometheus.wait_ready(30)
        url = prometheus.url
        # Two scrapes of the series at 0 before the first request: increase() then counts every event.
        wait_until(lambda: _scrapes(url) >= 2, 30, "two scrapes of the comparator")
        _traffic(comparator)
        wait_until(lambda: _latest(url, shadow.MIRRORED, outcome="queued") == 9
                   and _latest(url, f"{shadow.SIMILARITY}_count") == 8
                   and _latest(url, shadow.ERRORS, arm="shadow") == 1, 30, "the comparisons scraped")
        # Read at the last scrape: no extrapolation past it.
        [(_, stamp)] = Client(url).query(f'max(timestamp({shadow.MIRRORED}{{outcome="queued"}}))')
        yield shadow.summarise(Client(url, at=stamp), MODEL, SHADOW, window_seconds=600)
    finally:
        prometheus.stop()
        comparator.stop()


def _scrapes(url: str) -> float:
    found = Client(url).query(f'count_over_time({shadow.MIRRORED}{{outcome="queued"}}[1m])')
    return found[0][1] if found else 0.0


def _latest(url: str, series: str, **labels: str) -> float:
    """The series' value now (a client queries at the time it is made)."""
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return sum(value for _, value in Client(url).query(f"{series}{{{selector}}}"))


def _traffic(comparator: Comparator) -> None:
    """Nine mirrored requests: four greedy alike, two greedy rephrased, two sampled refused by the shadow, one
    the shadow fails."""
    for i in range(4):
        both(comparator, f"same-{i}", Reply(SAME, tokens=10), Reply(SAME, tokens=14, delay=0.3))
    for i in range(2):
        both(comparator, f"rephrased-{i}", Reply(SAT, tokens=10), Reply(LAY, tokens=14, delay=0.3))
    for i in range(2):
        both(comparator, f"refused-{i}", Reply(HELPS, tokens=10), Reply(REFUSES, tokens=4, delay=0.3))
    both(comparator, "fails", Reply(SAME, tokens=10), Reply("", status=500))
    for prompt in [f"same-{i}" for i in range(4)] + [f"rephrased-{i}" for i in range(2)]:
        comparator.mirror(prompt, temperature=0)
    for prompt in ("refused-0", "refused-1", "fails"):
        comparator.mirror(prompt, temperature=0.7)
    deadline = time.monotonic() + 30
    while comparator.value(f"{shadow.SIMILARITY}_count", version=SHADOW, decoding="sampled") < 2:
        assert time.monotonic() < deadline, "the comparator never compared the sampled requests"
        time.sleep(0.05)


def _metric(summary: shadow.ShadowSummary, name: str) -> shadow.ArmMetric:
    [found] = [m for m in summary.metrics if m.name == name]
    return found


def test_mirrored_requests_and_failed_arms_are_reported(summary: shadow.ShadowSummary):
    assert summary.mirrored == {"queued": 9, "dropped": 0, "skipped_path": 0, "skipped_too_large": 0,
                                "skipped_not_json": 0, "failed": 0}
    assert summary.errors == {"stable": 0, "shadow": 1}


def test_agreement_per_decoding_and_over_all_pairs(summary: shadow.ShadowSummary):
    greedy, sampled, every = (summary.agreement[k] for k in ("greedy", "sampled", "all"))
    assert (greedy.pairs, sampled.pairs, every.pairs) == (6, 2, 8)
    assert greedy.exact.mean == pytest.approx(4 / 6)
    assert sampled.exact.mean == 0
    assert every.exact.mean == pytest.approx(4 / 8)
    # Rephrased pairs score 2 * 5 / (6 + 6); refused ones share no word.
    assert greedy.similarity.mean == pytest.approx((4 * 1 + 2 * 10 / 12) / 6)
    assert sampled.similarity.mean == 0
    assert every.similarity.mean == pytest.approx((4 * 1 + 2 * 10 / 12) / 8)
    assert 0 <= every.similarity.low < every.similarity.mean < every.similarity.high <= 1
    assert 0 <= every.exact.low < every.exact.mean < every.exact.high <= 1


def test_output_tokens_and_refusals_per_arm_with_the_shadows_change(summary: shadow.ShadowSummary):
    tokens = _metric(summary, "output_tokens")
    assert (tokens.stable.n, tokens.shadow.n) == (8, 8)
    assert tokens.stable.mean == 10
    assert tokens.shadow.mean == pytest.approx((6 * 14 + 2 * 4) / 8)
    assert tokens.change.estimate == pytest.approx(11.5 / 10 - 1)
    refusals = _metric(summary, "refusal_rate")
    assert (refusals.stable.mean, refusals.shadow.mean) == (0, 2 / 8)
    assert refusals.absolute, "stable refused nothing: the change is a difference of rates, not a ratio"
    assert refusals.change.estimate == pytest.approx(2 / 8)


def test_the_slower_shadow_shows_in_its_latency(summary: shadow.ShadowSummary):
    latency = _metric(summary, "latency")
    assert latency.stable.mean < 0.2 < 0.3 <= latency.shadow.mean
    assert latency.change.estimate > 0 and latency.lower_is_better
    assert latency.shadow.low <= latency.shadow.mean <= latency.shadow.high
    assert not math.isnan(latency.change.p_value)
