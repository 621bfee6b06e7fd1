"""Issue 16, point 7: /metrics under `seau serve --workers N` is the sum over the
workers, with the standard process metrics.

Before the change each worker kept its own registry and /metrics showed the one
that answered: the request count seen was about half of what was sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import httpx
import psutil
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import seau_server

ROUTE = "/readyz"  # not the one seau_server polls until the server answers


def _requests_seen(families: Sequence[object]) -> float:
    total = 0.0
    for family in families:
        for sample in getattr(family, "samples", []):
            if sample.name == "seau_http_requests_total" and sample.labels.get("route") == ROUTE:
                total += sample.value
    return total


def _per_worker(server_pid: int) -> dict[int, float]:
    """Requests to ROUTE each worker counted, read from its own metric file."""
    counts: dict[int, float] = {}
    for child in psutil.Process(server_pid).children():
        directory = child.environ().get("PROMETHEUS_MULTIPROC_DIR")
        if directory is None:
            continue
        path = Path(directory) / f"counter_{child.pid}.db"
        if path.exists():
            merged = MultiProcessCollector.merge([str(path)])  # type: ignore[no-untyped-call]
            counts[child.pid] = _requests_seen(list(merged))
    return counts


def test_metrics_sum_over_two_workers(tmp_path: Path) -> None:
    env = {"SEAU_DATA_DIR": str(tmp_path / "data")}
    with seau_server(env, cwd=tmp_path, args=["--workers", "2"]) as server:
        sent = 0
        counts: dict[int, float] = {}
        # A fresh connection each time, so that either worker may accept it.
        while sent < 2000:
            for _ in range(20):
                assert httpx.get(f"{server.url}{ROUTE}").status_code == 200
                sent += 1
            counts = _per_worker(server.pid)
            if len(counts) == 2 and all(counts.values()):
                break
        assert len(counts) == 2, counts
        assert all(counts.values()), counts
        scraped = httpx.get(f"{server.url}/metrics")
        assert scraped.status_code == 200
        families = list(text_string_to_metric_families(scraped.text))
        assert _requests_seen(families) == sent
        values = {s.name: s.value for f in families for s in f.samples}
        assert values["seau_worker_processes"] == 2
        assert values["process_resident_memory_bytes"] > 0
        assert values["process_cpu_seconds_total"] > 0
        assert values["seau_uploads_in_progress"] == 0
        assert "seau_received_bytes_total" in values
        directory = next(iter(psutil.Process(server.pid).children())).environ()[
            "PROMETHEUS_MULTIPROC_DIR"
        ]
    # `seau serve` removes the metric files it made when it stops.
    assert not Path(directory).exists()
