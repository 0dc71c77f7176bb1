"""A JetStream cluster of nats-server processes from the wheel on loopback.

Each node is the package's nats.conf (as `make run` serves it) plus a `server_name` and
a `cluster` block routing to the others, as `deploy/nats-cluster.conf` sets them on three
machines; what differs is only where they listen (and TLS, which loopback leaves out). For
the cluster tests and benches: kill a node, start it again on the same data and ports.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import nats

from julia_chips.embedded.nats_server import EmbeddedNats
from julia_chips.embedded.process import free_port

CLUSTER_NAME = "julia-chips"


def _cluster_block(name: str, route_port: int, route_ports: list[int]) -> str:
    routes = "\n".join(f"    nats-route://127.0.0.1:{port}" for port in route_ports)
    return (f"server_name: {name}\n"
            f"cluster {{\n  name: {CLUSTER_NAME}\n  listen: 127.0.0.1:{route_port}\n"
            f"  routes: [\n{routes}\n  ]\n}}\n")


class NatsCluster:
    """`size` nodes (3 by default, what JULIA_REPLICAS=3 needs) in `data_dir/<node>`."""

    def __init__(self, data_dir: Path, partitions: int, size: int = 3) -> None:
        route_ports = [free_port() for _ in range(size)]
        self.nodes = [
            EmbeddedNats(data_dir / f"nats-{i}", partitions, port=free_port(),
                         extra_conf=_cluster_block(f"nats-{i}", route_ports[i], route_ports))
            for i in range(size)]

    @property
    def url(self) -> str:
        """Every node, comma-separated: the NATS_URL a client of the cluster is given."""
        return ",".join(self.servers)

    @property
    def servers(self) -> list[str]:
        return [node.url for node in self.nodes]

    def start(self) -> str:
        """Start every node; `ready` waits until they have formed the cluster."""
        for node in self.nodes:
            node.start()
        return self.url

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    async def ready(self, timeout: float = 60.0) -> None:
        """Until JetStream answers through the cluster (the nodes elected a meta leader)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            nc = await nats.connect(self.servers, connect_timeout=1, allow_reconnect=False)
            try:
                await nc.jetstream().account_info()
                return
            except Exception:  # no meta leader yet: JetStream unavailable
                await asyncio.sleep(0.25)
            finally:
                await nc.close()
        raise TimeoutError(f"the cluster elected no JetStream leader within {timeout}s")
