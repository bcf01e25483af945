"""connectors.erp.audit: the end-of-run comparison of the ERP with erpbridge."""

from __future__ import annotations

from collections import Counter

from connectors.erp.audit import Audit

STOCK = {("SKU-1", "WH-EAST"): 5, ("SKU-1", "WH-WEST"): 2, ("SKU-2", "WH-EAST"): 0}


def test_agreement_is_ok_and_says_so() -> None:
    audit = Audit(frozenset({"o-1", "o-2"}), Counter({"o-1": 1, "o-2": 1}), STOCK, dict(STOCK))
    assert audit.ok
    assert audit.stock_rows() == [("SKU-1", 7, 7), ("SKU-2", 0, 0)]
    text = audit.render()
    assert "DIFFERS" not in text and "agrees" in text
    assert text.splitlines()[2].split() == ["sales", "orders,", "exactly", "once", "2", "2", "ok"]


def test_missing_doubled_unexpected_and_stock_differences_are_each_named() -> None:
    erp_stock = {**STOCK, ("SKU-1", "WH-WEST"): 3}
    audit = Audit(
        frozenset({"o-1", "o-2", "o-3"}), Counter({"o-1": 1, "o-2": 2, "o-9": 1}), STOCK, erp_stock
    )
    assert not audit.ok
    assert (audit.missing, audit.doubled, audit.unexpected) == (["o-3"], ["o-2"], ["o-9"])
    assert audit.stock_mismatches == [("SKU-1", "WH-WEST")]
    text = audit.render()
    assert "DISAGREES" in text
    for problem in (
        "missing in the ERP: o-3",
        "2 sales orders in the ERP for o-2",
        "in the ERP but never sent: o-9",
        "stock of SKU-1 at WH-WEST: erpbridge 2, ERP 3",
    ):
        assert problem in text
    # Only o-1 reached the ERP exactly once.
    assert text.splitlines()[2].split()[-3:] == ["3", "1", "DIFFERS"]


def test_a_warehouse_only_one_side_knows_counts_as_zero_there() -> None:
    audit = Audit(frozenset(), Counter(), {("SKU-1", "WH-EU"): 0}, {})
    assert audit.ok
