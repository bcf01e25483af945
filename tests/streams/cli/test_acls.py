"""`erpbridge acls list`: the principals' ACLs for the settings' app id and tenant prefix,
as lines an operator runs (`acls apply` runs on a broker with ACLs: tests/streams/ops/test_acls.py)."""

from __future__ import annotations

import shlex

from streams.contracts.access import principals
from streams.ops.acls import kafka_acls_commands
from streams.ops.settings import Settings
from tests.support import run


def test_acls_list_prints_the_lines_for_the_app_id_and_the_tenant_prefix() -> None:
    result = run(["acls", "list"], {"ERPBRIDGE_APP_ID": "shop", "ERPBRIDGE_TOPIC_PREFIX": "acme-"})
    assert result.exit_code == 0, result.output
    settings = Settings(app_id="shop", topic_prefix="acme-")
    assert result.stdout == kafka_acls_commands(principals(settings))
    commands = [line for line in result.stdout.splitlines() if line.startswith("kafka-acls.sh")]
    assert len(commands) == sum(len(p.acls) for p in principals(settings))
    topics = {
        words[words.index("--topic") + 1]
        for words in map(shlex.split, commands)
        if "--topic" in words
    }
    assert "acme-commerce.orders" in topics
    assert "shop-orders-changelog" in topics
    assert all(name.startswith(("acme-", "shop-")) for name in topics)
