/* Written by `python -m genai_otel.processors.lane_contract` from processors/lane_contract.py:
 * do not edit. The positions of the items of the Lane's context and outcome tuples. */
#ifndef WIRESCAN_CONTRACT_H
#define WIRESCAN_CONTRACT_H

enum {
    CTX_TABLE, /* the scanner's key table (make_table): what the walk finds in each span */
    CTX_CATEGORICAL, /* keys whose values decide a span's kind: they enter its signature */
    CTX_MARKERS, /* keys any of which makes a span a model call (normalise.MARKER_KEYS) */
    CTX_SLOW, /* keys that always send a span to the Python path (a reported cost, ...) */
    CTX_TOKEN_KEYS, /* per token type (normalise.TOKEN_TYPES): the keys read, first found wins */
    CTX_TOKEN_CURRENT, /* per token type: its current name, written onto a span that lacks it */
    CTX_TOKEN_ZERO_WRITTEN, /* per token type: whether a reported 0 is written under that name */
    CTX_TOKEN_HEADERS, /* per token type: the framing of its current name as an int attribute */
    CTX_CORRECTIONS, /* normalise.TOKEN_CORRECTIONS: ((target, (parts, ...)), ...) */
    CTX_COST_PARTS, /* pricing.COST_PARTS compiled: ((coefficients, rate, minus, per_request), ...) */
    CTX_USERS, /* the user keys, first found wins */
    CTX_FEATURE, /* the feature key */
    CTX_TTFC, /* the time-to-first-chunk key */
    CTX_MAX_TOKENS, /* limits.max_tokens_per_span: a larger count is the Python path's */
    CTX_MAX_LENGTH, /* limits.max_attribute_length: a longer value is the Python path's */
    CTX_EXEMPLARS, /* whether histograms keep exemplars */
    CTX_HISTOGRAM, /* Registry.histogram(bounds, exemplars): makes a histogram */
    CTX_BOUNDS, /* bucket bounds: duration, time to first chunk, output tokens/s, cost per request */
    CTX_ADD_SUMS, /* Registry.add_sums: adds an entry's pending sums to its series */
    CTX_COST_KEY, /* Registry.cost_key(which, service label, value): a cost-by-user/feature series key */
    CTX_USER_LIMITER, /* the user label's LabelLimiter */
    CTX_FEATURE_LIMITER, /* the feature label's LabelLimiter */
    CTX_USER_COST, /* Registry.user_cost: cost by (service, user) */
    CTX_FEATURE_COST, /* Registry.feature_cost: cost by (service, feature) */
    CTX_UNPRICED, /* Registry.unpriced: calls left unpriced by (provider, model, reason) */
    CTX_RECENT, /* the duplicate memory (duplicates.recent_calls), or None */
    CTX_RECORD_DUPLICATE, /* Registry.record_duplicate(counted scope, duplicate scope) */
    CTX_RECORD_AGAIN, /* Registry.record_again(genai): a copy of a span seen before, counted nothing */
    CTX_DUPLICATE_PREFIX, /* genai_otel.cost.duplicate_of's framing before its 16 hex digits */
    CTX_RESPONSE_ID, /* the gen_ai.response.id key */
    CTX_CALL_LOG, /* CallLog.line, or None: the call log is off */
    CTX_SIZE
};

enum {
    OUT_STATS, /* the SeriesStats the span kind records into */
    OUT_SERVICE_LABEL, /* its service label (capped) */
    OUT_LO, /* the first start time (ns) the outcome holds for */
    OUT_HI, /* the first start time (ns) it no longer holds for (the price changes then) */
    OUT_PROVIDER_ATTR, /* gen_ai.provider.name's bytes, when the span lacks that current name */
    OUT_ALWAYS, /* bit i: correction i applies whatever the counts (normalise.always_corrected) */
    OUT_REQUEST_KEY, /* its requests series key: (status, error type label) */
    OUT_STATUS, /* ok or error: which duration histogram */
    OUT_ERROR_ATTR, /* genai_otel.error.category's bytes, when the span lacks it */
    OUT_IDENT, /* duplicates.call_ident(provider, model) */
    OUT_NATIVE, /* how it may pair with another span of the call (duplicates.py NATIVE, ...) */
    OUT_BASE, /* priced: the base rates (pricing.Rates.base) */
    OUT_TIERS, /* priced: the long-context tiers (pricing.Rates.tiers) */
    OUT_MULTIPLIER, /* priced: the discount multiplier */
    OUT_PREFIXES, /* priced: the six cost attributes' framing (pipeline._cost_packer) */
    OUT_UNPRICED_KEY, /* unpriced: the unpriced series key (provider, model, reason) */
    OUT_UNPRICED_ATTR, /* unpriced: genai_otel.cost.unpriced_reason's bytes */
    OUT_LOG_STATIC, /* CallLog.static for the kind's calls, or None: the call log is off */
    OUT_SIZE
};

enum {
    KIND_PRICED = 1,
    KIND_UNPRICED = 2,
    KIND_OTHER = 3,
    KIND_NO_COST = 4,
};

/* normalise.TOKEN_TYPES and pricing.COST_PARTS: how many, and the indexes the lane names */
#define TOKEN_TYPES 5
#define TOKEN_INPUT 0
#define TOKEN_OUTPUT 1
#define COST_PARTS 5

#endif /* WIRESCAN_CONTRACT_H */
