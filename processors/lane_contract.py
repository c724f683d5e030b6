"""What crosses between the Python rules and the C lane, declared once, by name.

The lane (`_wirescan.Lane`, see `native/_wirescan.h`) applies to span kinds seen before the
outcome the Python path decided for them. It is handed two tuples: its context once, when it
is made (`Lane(context)`), and one outcome per span kind (`Lane.learn(signature, kind,
outcome)`). Their items are named here, in order, with what each is; Python builds them with
`pack`, by name, and the C sources index them through `native/_contract.h`, an enum written
from these declarations by `python -m genai_otel.processors.lane_contract` (a test fails when
the header and the declarations disagree). Adding an item is a line here, the value where the
tuple is packed, and its use in C.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Final

# (name, what it is); the C enum is CTX_<NAME>, in this order, and CTX_SIZE
CONTEXT: Final = (
    ("table", "the scanner's key table (make_table): what the walk finds in each span"),
    ("categorical", "keys whose values decide a span's kind: they enter its signature"),
    ("markers", "keys any of which makes a span a model call (normalise.MARKER_KEYS)"),
    ("slow", "keys that always send a span to the Python path (a reported cost, ...)"),
    ("token_keys", "per token type (normalise.TOKEN_TYPES): the keys read, first found wins"),
    ("token_current", "per token type: its current name, written onto a span that lacks it"),
    ("token_zero_written", "per token type: whether a reported 0 is written under that name"),
    ("token_headers", "per token type: the framing of its current name as an int attribute"),
    ("corrections", "normalise.TOKEN_CORRECTIONS: ((target, (parts, ...)), ...)"),
    ("cost_parts", "pricing.COST_PARTS compiled: ((coefficients, rate, minus, per_request), ...)"),
    ("users", "the user keys, first found wins"),
    ("feature", "the feature key"),
    ("ttfc", "the time-to-first-chunk key"),
    ("max_tokens", "limits.max_tokens_per_span: a larger count is the Python path's"),
    ("max_length", "limits.max_attribute_length: a longer value is the Python path's"),
    ("exemplars", "whether histograms keep exemplars"),
    ("histogram", "Registry.histogram(bounds, exemplars): makes a histogram"),
    ("bounds", "bucket bounds: duration, time to first chunk, output tokens/s, cost per request"),
    ("add_sums", "Registry.add_sums: adds an entry's pending sums to its series"),
    ("cost_key", "Registry.cost_key(which, service label, value): a cost-by-user/feature series key"),
    ("user_limiter", "the user label's LabelLimiter"),
    ("feature_limiter", "the feature label's LabelLimiter"),
    ("user_cost", "Registry.user_cost: cost by (service, user)"),
    ("feature_cost", "Registry.feature_cost: cost by (service, feature)"),
    ("unpriced", "Registry.unpriced: calls left unpriced by (provider, model, reason)"),
    ("recent", "the duplicate memory (duplicates.recent_calls), or None"),
    ("record_duplicate", "Registry.record_duplicate(counted scope, duplicate scope)"),
    ("record_again", "Registry.record_again(genai): a copy of a span seen before, counted nothing"),
    ("duplicate_prefix", "genai_otel.cost.duplicate_of's framing before its 16 hex digits"),
    ("response_id", "the gen_ai.response.id key"),
    ("call_log", "CallLog.line, or None: the call log is off"),
)

# Lane.learn(signature, kind, outcome) for kinds PRICED, UNPRICED and NO_COST: OUT_<NAME>, OUT_SIZE.
# Items a kind does not use are None.
OUTCOME: Final = (
    ("stats", "the SeriesStats the span kind records into"),
    ("service_label", "its service label (capped)"),
    ("lo", "the first start time (ns) the outcome holds for"),
    ("hi", "the first start time (ns) it no longer holds for (the price changes then)"),
    ("provider_attr", "gen_ai.provider.name's bytes, when the span lacks that current name"),
    ("always", "bit i: correction i applies whatever the counts (normalise.always_corrected)"),
    ("request_key", "its requests series key: (status, error type label)"),
    ("status", "ok or error: which duration histogram"),
    ("error_attr", "genai_otel.error.category's bytes, when the span lacks it"),
    ("ident", "duplicates.call_ident(provider, model)"),
    ("native", "how it may pair with another span of the call (duplicates.py NATIVE, ...)"),
    ("base", "priced: the base rates (pricing.Rates.base)"),
    ("tiers", "priced: the long-context tiers (pricing.Rates.tiers)"),
    ("multiplier", "priced: the discount multiplier"),
    ("prefixes", "priced: the six cost attributes' framing (pipeline._cost_packer)"),
    ("unpriced_key", "unpriced: the unpriced series key (provider, model, reason)"),
    ("unpriced_attr", "unpriced: genai_otel.cost.unpriced_reason's bytes"),
    ("log_static", "CallLog.static for the kind's calls, or None: the call log is off"),
)

# Lane.learn's kinds: KIND_<NAME> in C
KINDS: Final = (("priced", 1), ("unpriced", 2), ("other", 3), ("no_cost", 4))

HEADER: Final = Path(__file__).parent / "native" / "_contract.h"


def pack(declared: tuple[tuple[str, str], ...], **items: object) -> tuple[object, ...]:
    """The tuple the C side indexes, from items given by name (every declared name, no other)."""
    names = [name for name, _ in declared]
    missing = [name for name in names if name not in items]
    extra = sorted(set(items) - set(names))
    if missing or extra:
        raise TypeError(f"lane contract: missing {missing}, not declared {extra}")
    return tuple(items[name] for name in names)


def header() -> str:
    """native/_contract.h as these declarations make it."""
    lines = [
        "/* Written by `python -m genai_otel.processors.lane_contract` from processors/lane_contract.py:",
        " * do not edit. The positions of the items of the Lane's context and outcome tuples. */",
        "#ifndef WIRESCAN_CONTRACT_H",
        "#define WIRESCAN_CONTRACT_H",
        "",
    ]
    for prefix, declared in (("CTX", CONTEXT), ("OUT", OUTCOME)):
        lines.append("enum {")
        lines += [f"    {prefix}_{name.upper()}, /* {what} */" for name, what in declared]
        lines += [f"    {prefix}_SIZE", "};", ""]
    lines.append("enum {")
    lines += [f"    KIND_{name.upper()} = {value}," for name, value in KINDS]
    lines += ["};", ""]
    from .normalise import TOKEN_INPUT, TOKEN_OUTPUT, TOKEN_TYPES
    from .pricing import COST_PARTS

    lines += [
        "/* normalise.TOKEN_TYPES and pricing.COST_PARTS: how many, and the indexes the lane names */",
        f"#define TOKEN_TYPES {len(TOKEN_TYPES)}",
        f"#define TOKEN_INPUT {TOKEN_INPUT}",
        f"#define TOKEN_OUTPUT {TOKEN_OUTPUT}",
        f"#define COST_PARTS {len(COST_PARTS)}",
        "",
        "#endif /* WIRESCAN_CONTRACT_H */",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Writes native/_contract.h; `--check` only says whether it is current (exit 1 if not)."""
    args = sys.argv[1:] if argv is None else argv
    text = header()
    current = HEADER.read_text() if HEADER.exists() else ""
    if "--check" in args:
        if current != text:
            print(f"{HEADER} is stale: run python -m genai_otel.processors.lane_contract", file=sys.stderr)
            return 1
        return 0
    if current != text:
        HEADER.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
