"""The Python rules and the C lane share one declaration of what crosses between them."""

from __future__ import annotations

import pytest
from genai_otel.processors import lane_contract


def test_the_generated_header_is_current() -> None:
    assert lane_contract.HEADER.read_text() == lane_contract.header(), (
        "processors/native/_contract.h is stale: run python -m genai_otel.processors.lane_contract"
    )
    assert lane_contract.main(["--check"]) == 0


def test_the_header_names_every_declared_item_in_order() -> None:
    text = lane_contract.header()
    for prefix, declared in (("CTX", lane_contract.CONTEXT), ("OUT", lane_contract.OUTCOME)):
        positions = [text.index(f"    {prefix}_{name.upper()}, ") for name, _ in declared]
        assert positions == sorted(positions)
        assert f"    {prefix}_SIZE\n" in text


def test_pack_orders_items_by_name_and_refuses_missing_or_unknown_ones() -> None:
    declared = (("b", "second"), ("a", "first"))
    assert lane_contract.pack(declared, a=1, b=2) == (2, 1)
    with pytest.raises(TypeError, match=r"missing \['a'\], not declared \[\]"):
        lane_contract.pack(declared, b=2)
    with pytest.raises(TypeError, match=r"not declared \['c'\]"):
        lane_contract.pack(declared, a=1, b=2, c=3)


def test_a_stale_header_is_reported(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    stale = tmp_path / "_contract.h"
    stale.write_text("/* old */\n")
    monkeypatch.setattr(lane_contract, "HEADER", stale)
    assert lane_contract.main(["--check"]) == 1
    assert "is stale" in capsys.readouterr().err
    assert lane_contract.main([]) == 0
    assert stale.read_text() == lane_contract.header()
