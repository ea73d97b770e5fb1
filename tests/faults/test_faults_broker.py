"""Every broker connection dropped for a few seconds under a running system: the services reconnect by
themselves (/readyz/consumer 503 during the cut, 200 after, same processes; /readyz, the API's readiness, stays
200 throughout), nothing is lost, no platform write twice.

Kafka clients connect to the address the broker ADVERTISES, so this test runs its own Tansu broker that
listens on port B but advertises port P, where a TCP proxy (tests/support/tcpproxy.py) forwards P → B. Cutting
the proxy (every connection aborted, new ones refused) drops the broker for everyone without restarting it
(Tansu keeps topics in memory only, so a restart would lose them).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from allot.runtime.embedded import free_port
from allot.runtime.stack import RunningStack
from tests.support.faults import OutageScenario, run_outage_scenario, start_broker_advertising, start_fault_stack
from tests.support.tcpproxy import TcpProxy

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def proxied_stack(database_url: str) -> Iterator[tuple[RunningStack, TcpProxy]]:
    root = Path(tempfile.mkdtemp(prefix="allot-faults-broker-"))
    (root / "logs").mkdir(parents=True)
    broker_port, proxy_port = free_port(), free_port()
    broker = start_broker_advertising(broker_port, proxy_port, log_path=root / "logs" / "broker.log")
    proxy = TcpProxy(proxy_port, "127.0.0.1", broker_port).start()
    try:
        stack = start_fault_stack(root, ["sandbox", "guardrails", "executor", "rules"],
                                  bootstrap=f"127.0.0.1:{proxy_port}", database_url=database_url)
        try:
            yield stack, proxy
        finally:
            stack.stop()
    finally:
        proxy.stop()
        broker.stop()


async def test_broker_connections_dropped_lose_nothing_and_services_reconnect_by_themselves(
        proxied_stack: tuple[RunningStack, TcpProxy]) -> None:
    stack, proxy = proxied_stack
    dropped: list[int] = []
    cfg = OutageScenario(watched=["guardrails", "executor", "rules"], consumers=["rules"], outage_s=7.0, seed=11,
                         probe="/readyz/consumer", api_stays_up=True)
    result = await run_outage_scenario(stack, cfg, cut=lambda: dropped.append(proxy.cut()), restore=proxy.restore,
                                       say=print)
    result["connections_dropped"] = dropped[0]
    print(json.dumps({k: v for k, v in result.items() if k != "projections"}, default=str, indent=1))
    assert dropped[0] > 0, "the cut dropped no connection: traffic did not go through the proxy"
    assert result["write_path"]["lost"] == 0 and result["write_path"]["duplicates_applied"] == 0
    assert result["write_path"]["platform_writes"] == cfg.n_changes
