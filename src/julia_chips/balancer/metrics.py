"""The balancer's own Prometheus figures, from the leader's process.

`/health/chips` shows the backlog from the `route_backlog` read model (projections), like
every other fleet figure; these gauges are the leader's live view of the same thing.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

BACKLOG = Gauge("julia_balancer_backlog", "Send requests waiting for a chip with capacity")
BACKLOG_OLDEST = Gauge("julia_balancer_backlog_oldest_seconds",
                       "Age of the oldest waiting send request")
FAILOVER_SECONDS = Histogram(
    "julia_balancer_failover_seconds",
    "From a chip's Cooled/Banned/Retired event to its last conversation reassigned",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
REQUESTS = Counter("julia_balancer_requests_total", "Route requests answered", ["status"])
# What a caller waits: from the request stored in ROUTE_CMDS (its JetStream timestamp, the
# server's clock) to the answer sent (ours); on one machine or NTP-synced hosts the two agree.
REQUEST_SECONDS = Histogram(
    "julia_balancer_request_seconds", "From a route request stored to its answer",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
IS_LEADER = Gauge("julia_balancer_leader", "1 while this process leads the balancer")
