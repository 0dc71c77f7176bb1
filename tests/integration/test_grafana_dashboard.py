"""`deploy/grafana/julia-chips.json` queries only metrics that `/metrics` serves: each panel's
PromQL, stripped of its label matchers, ranges and grouping, names metric families that a
running app exposes (with the modules of every part loaded, as `julia-chips run` has them)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import julia_chips.app  # noqa: F401 (every part's process-wide metrics, as `run` registers them)
from tests.integration.test_http_api import Fleet, fleet, get  # noqa: F401 (the fixture)

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "julia-chips.json"
_STRIPPED = re.compile(r"\{[^}]*\}|\[[^\]]*\]|\b(?:by|without)\s*\([^)]*\)")
_NAME = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")
_HISTOGRAM_PARTS = ("_bucket", "_sum", "_count")


def queried_metrics(expr: str) -> set[str]:
    """The metric names in a PromQL expression: identifiers that are not a function or
    aggregation called with `(`, once matchers, ranges and `by (...)` are gone."""
    bare = _STRIPPED.sub(" ", expr)
    return {name for name in _NAME.findall(bare) if not re.fullmatch(r"[\d.e+-]+", name)}


def exposed_families(text: str) -> set[str]:
    """Names a query may use: each `# TYPE` family, with a histogram's series names."""
    families: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
        families.add(name)
        if kind == "histogram":
            families.update(name + part for part in _HISTOGRAM_PARTS)
    return families


def test_queried_metrics_drop_functions_labels_ranges_and_grouping() -> None:
    expr = ('histogram_quantile(0.99, sum by (le) (rate(julia_balancer_request_seconds_bucket'
            '{job="x"}[5m]))) + topk(3, chip_doctors)')
    assert queried_metrics(expr) == {"julia_balancer_request_seconds_bucket", "chip_doctors"}


async def test_every_metric_the_dashboard_queries_is_served(fleet: Fleet) -> None:  # noqa: F811
    doc = json.loads(DASHBOARD.read_text())
    queried = {name for panel in doc["panels"] for target in panel["targets"]
               for name in queried_metrics(target["expr"])}
    assert len(queried) >= 10  # fleet, bans, warm-up, routing, backlog, lag, brake, ...
    status, text = await get(f"{fleet.base}/metrics")
    assert status == 200
    missing = sorted(queried - exposed_families(text))
    assert not missing, f"the dashboard queries metrics /metrics does not serve: {missing}"
