"""The one place genai-otel spells attribute, event and metric names.

Three groups live here:

* the OpenTelemetry GenAI semantic conventions as currently published (the
  ``semantic-conventions-genai`` registry), which we emit;
* older or foreign spellings that other instrumentations still send (older semconv
  releases, OpenLLMetry, OpenLIT, the Anthropic SDK's native tracing), which the
  processor reads but nothing here emits;
* genai-otel's own extensions, prefixed ``genai_otel.`` except where an open
  convention proposal exists (cost, per ``gen_ai.usage.cost.*``).

``opentelemetry-semantic-conventions`` marks its ``gen_ai`` constants deprecated, so we
do not import them: every other module imports names from here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

# --------------------------------------------------------------------------------------
# Current GenAI semantic conventions (emitted)
# --------------------------------------------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_CHOICE_COUNT: Final = "gen_ai.request.choice.count"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K: Final = "gen_ai.request.top_k"
GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
GEN_AI_REQUEST_SEED: Final = "gen_ai.request.seed"
GEN_AI_REQUEST_ENCODING_FORMATS: Final = "gen_ai.request.encoding_formats"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"
GEN_AI_OUTPUT_TYPE: Final = "gen_ai.output.type"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"  # includes cache read + write
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"  # includes reasoning
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_EMBEDDINGS_DIMENSION_COUNT: Final = "gen_ai.embeddings.dimension.count"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
GEN_AI_TOOL_TYPE: Final = "gen_ai.tool.type"
GEN_AI_TOOL_DEFINITIONS: Final = "gen_ai.tool.definitions"
GEN_AI_TOOL_DESCRIPTION: Final = "gen_ai.tool.description"
GEN_AI_TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"  # content: opt-in only
GEN_AI_TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"  # content: opt-in only
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_AGENT_ID: Final = "gen_ai.agent.id"
GEN_AI_AGENT_DESCRIPTION: Final = "gen_ai.agent.description"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"  # content: opt-in only
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"  # content: opt-in only
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"  # content: opt-in only
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
OPENAI_REQUEST_SERVICE_TIER: Final = "openai.request.service_tier"
OPENAI_RESPONSE_SERVICE_TIER: Final = "openai.response.service_tier"
OPENAI_RESPONSE_SYSTEM_FINGERPRINT: Final = "openai.response.system_fingerprint"
AWS_BEDROCK_GUARDRAIL_ID: Final = "aws.bedrock.guardrail.id"
AWS_REQUEST_ID: Final = "aws.request_id"  # general AWS convention: the x-amzn-requestid header

# General (non-GenAI) conventions used on GenAI spans.
ERROR_TYPE: Final = "error.type"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
USER_ID: Final = "user.id"
SERVICE_NAME: Final = "service.name"  # resource attribute

# Events.
EVENT_EVALUATION_RESULT: Final = "gen_ai.evaluation.result"
EVENT_INFERENCE_DETAILS: Final = "gen_ai.client.inference.operation.details"
GEN_AI_EVALUATION_NAME: Final = "gen_ai.evaluation.name"
GEN_AI_EVALUATION_SCORE_VALUE: Final = "gen_ai.evaluation.score.value"
GEN_AI_EVALUATION_SCORE_LABEL: Final = "gen_ai.evaluation.score.label"
GEN_AI_EVALUATION_EXPLANATION: Final = "gen_ai.evaluation.explanation"
# Safety evaluations by default (`gen_ai.evaluation.name`): a score or flag of 1 means the response
# hallucinated / is toxic, the reverse of the 0-10 quality scale (see processors/safety.py).
EVALUATION_HALLUCINATION: Final = "hallucination"
EVALUATION_TOXICITY: Final = "toxicity"


class Operation(StrEnum):
    """Well-known ``gen_ai.operation.name`` values we emit."""

    CHAT = "chat"
    TEXT_COMPLETION = "text_completion"
    EMBEDDINGS = "embeddings"
    GENERATE_CONTENT = "generate_content"
    EXECUTE_TOOL = "execute_tool"
    INVOKE_AGENT = "invoke_agent"
    CREATE_AGENT = "create_agent"
    # a guardrail's evaluation: the operation name both open guardrail proposals use (no released
    # convention names guardrails yet); its attributes are ours (GENAI_OTEL_GUARDRAIL_*)
    APPLY_GUARDRAIL = "apply_guardrail"


class ToolType(StrEnum):
    """``gen_ai.tool.type`` values: where a tool runs."""

    FUNCTION = "function"  # the client runs it (an agent's function tool)
    EXTENSION = "extension"  # an agent-side extension: an MCP server's tool
    DATASTORE = "datastore"


class Provider(StrEnum):
    """Well-known ``gen_ai.provider.name`` values (the registry's spelling)."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    AZURE_OPENAI = "azure.ai.openai"
    AZURE_INFERENCE = "azure.ai.inference"
    AWS_BEDROCK = "aws.bedrock"
    GCP_GEMINI = "gcp.gemini"
    GCP_VERTEX_AI = "gcp.vertex_ai"
    GCP_GEN_AI = "gcp.gen_ai"
    COHERE = "cohere"
    DEEPSEEK = "deepseek"
    GROQ = "groq"
    MISTRAL_AI = "mistral_ai"
    PERPLEXITY = "perplexity"
    X_AI = "x_ai"
    IBM_WATSONX_AI = "ibm.watsonx.ai"
    MOONSHOT_AI = "moonshot_ai"


class UnlistedProvider(StrEnum):
    """``gen_ai.provider.name`` values genai-otel emits that the registry does not list (the
    conventions allow custom values). None of them contains "openai": price tables that match
    provider names by substring (genai-prices does) must not read them as OpenAI."""

    TOGETHER_AI = "together_ai"
    FIREWORKS = "fireworks"
    OPENROUTER = "openrouter"
    CEREBRAS = "cerebras"
    OLLAMA = "ollama"
    VLLM = "vllm"
    # An OpenAI-compatible endpoint the host table does not know: self-hosted (vLLM, TGI,
    # LiteLLM, llama.cpp), a gateway, or a vendor not listed. Who bills for it is unknown.
    SELF_HOSTED = "self_hosted"


# Providers with no public price list: the processor prices them only from its overrides file.
SELF_HOSTED_PROVIDERS: Final = frozenset(
    {UnlistedProvider.OLLAMA.value, UnlistedProvider.VLLM.value, UnlistedProvider.SELF_HOSTED.value}
)

# -- OpenAI-compatible endpoints: the openai SDK client's base URL -> gen_ai.provider.name --
# Patterns: "host" (any port), "host:port", "*suffix" (a host ending in suffix: "*.domain" is
# any subdomain of domain), "*:port" (any host on that port); hosts are compared lower-cased.
# The first match wins; GENAI_OTEL_PROVIDER_HOSTS entries come first.
# A host matching none is UNLISTED_HOST_PROVIDER (never "openai": it would be priced as OpenAI).
OPENAI_COMPATIBLE_HOSTS: Final[tuple[tuple[str, str], ...]] = (
    ("api.openai.com", Provider.OPENAI.value),
    ("*.openai.azure.com", Provider.AZURE_OPENAI.value),
    ("*.cognitiveservices.azure.com", Provider.AZURE_OPENAI.value),
    ("*.services.ai.azure.com", Provider.AZURE_INFERENCE.value),
    ("*.models.ai.azure.com", Provider.AZURE_INFERENCE.value),
    ("api.groq.com", Provider.GROQ.value),
    ("api.deepseek.com", Provider.DEEPSEEK.value),
    ("api.mistral.ai", Provider.MISTRAL_AI.value),
    ("api.x.ai", Provider.X_AI.value),
    ("api.perplexity.ai", Provider.PERPLEXITY.value),
    ("api.cohere.ai", Provider.COHERE.value),
    ("api.cohere.com", Provider.COHERE.value),
    ("api.moonshot.ai", Provider.MOONSHOT_AI.value),
    ("api.moonshot.cn", Provider.MOONSHOT_AI.value),
    ("generativelanguage.googleapis.com", Provider.GCP_GEMINI.value),
    ("aiplatform.googleapis.com", Provider.GCP_VERTEX_AI.value),
    ("*-aiplatform.googleapis.com", Provider.GCP_VERTEX_AI.value),  # {region}-aiplatform...
    ("api.together.xyz", UnlistedProvider.TOGETHER_AI.value),
    ("api.together.ai", UnlistedProvider.TOGETHER_AI.value),
    ("api.fireworks.ai", UnlistedProvider.FIREWORKS.value),
    ("openrouter.ai", UnlistedProvider.OPENROUTER.value),
    ("api.cerebras.ai", UnlistedProvider.CEREBRAS.value),
    ("*:11434", UnlistedProvider.OLLAMA.value),  # Ollama's port, wherever it runs
)
UNLISTED_HOST_PROVIDER: Final = UnlistedProvider.SELF_HOSTED.value
# Forces one gen_ai.provider.name on every openai SDK call (the host table is not read).
ENV_OPENAI_PROVIDER: Final = "GENAI_OTEL_OPENAI_PROVIDER"
# "pattern=provider,..." entries read before the built-in host table (patterns as above).
ENV_PROVIDER_HOSTS: Final = "GENAI_OTEL_PROVIDER_HOSTS"


# --------------------------------------------------------------------------------------
# Older and foreign spellings (read, never emitted)
# --------------------------------------------------------------------------------------
LEGACY_GEN_AI_SYSTEM: Final = "gen_ai.system"  # replaced by gen_ai.provider.name
LEGACY_GEN_AI_USAGE_PROMPT_TOKENS: Final = "gen_ai.usage.prompt_tokens"
LEGACY_GEN_AI_USAGE_COMPLETION_TOKENS: Final = "gen_ai.usage.completion_tokens"
LEGACY_GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
LEGACY_GEN_AI_RESPONSE_FINISH_REASON: Final = "gen_ai.response.finish_reason"
# The Anthropic SDK's native span (scope com.anthropic.sdk.python) reports its stop reason here.
ANTHROPIC_MESSAGE_STOP_REASON: Final = "anthropic.message.stop_reason"
ANTHROPIC_SDK_SCOPE: Final = "com.anthropic.sdk.python"
ANTHROPIC_SDK_SPAN_NAME: Final = "anthropic.messages.create"
ANTHROPIC_SDK_TRACING_ENV: Final = "ANTHROPIC_OPEN_TELEMETRY"
# Further foreign spellings (OpenLLMetry ``llm.*`` / OpenLIT) are appended below by the
# processor's normaliser section.

# -- processor normaliser: foreign spellings it reads ---------------------------------
# Older semconv releases (and the contrib openai-v2 instrumentation) put OpenAI's tier here.
LEGACY_GEN_AI_OPENAI_REQUEST_SERVICE_TIER: Final = "gen_ai.openai.request.service_tier"
LEGACY_GEN_AI_OPENAI_RESPONSE_SERVICE_TIER: Final = "gen_ai.openai.response.service_tier"
# OpenLLMetry (traceloop, opentelemetry-semantic-conventions-ai).
OPENLLMETRY_REQUEST_TYPE: Final = "llm.request.type"  # chat | completion | embedding | rerank
OPENLLMETRY_USAGE_TOTAL_TOKENS: Final = "llm.usage.total_tokens"
OPENLLMETRY_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read_input_tokens"
OPENLLMETRY_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation_input_tokens"
OPENLLMETRY_LLM_USAGE_CACHE_READ_INPUT_TOKENS: Final = "llm.usage.cache_read_input_tokens"
OPENLLMETRY_USAGE_REASONING_TOKENS: Final = "gen_ai.usage.reasoning_tokens"  # OpenLIT uses it too
OPENLLMETRY_LLM_USER: Final = "llm.user"
OPENLLMETRY_GEN_AI_USER: Final = "gen_ai.user"
OPENLLMETRY_RESPONSE_FINISH_REASON: Final = "llm.response.finish_reason"
# OpenLIT (its own price table; the cost is kept, as a provider-reported one).
OPENLIT_USAGE_COST: Final = "gen_ai.usage.cost"  # double, USD
OPENLIT_USAGE_TOTAL_TOKENS: Final = "gen_ai.usage.total_tokens"
OPENLIT_REQUEST_USER: Final = "gen_ai.request.user"
OPENLIT_REQUEST_SERVICE_TIER: Final = "gen_ai.request.service_tier"
OPENLIT_RESPONSE_SERVICE_TIER: Final = "gen_ai.response.service_tier"
OPENLIT_SCOPE_PREFIX: Final = "openlit"
# Provider values other instrumentations send, mapped to the registry's spelling.
FOREIGN_PROVIDER_SPELLINGS: Final[dict[str, str]] = {
    "az.ai.openai": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "azure": "azure.ai.openai",
    "az.ai.inference": "azure.ai.inference",
    "azure_ai_inference": "azure.ai.inference",
    "bedrock": "aws.bedrock",
    "aws_bedrock": "aws.bedrock",
    "aws": "aws.bedrock",
    "gemini": "gcp.gemini",
    "google": "gcp.gemini",
    "google.ai.studio": "gcp.gemini",
    "google_genai": "gcp.gen_ai",
    "vertex_ai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "xai": "x_ai",
    "x-ai": "x_ai",
    "mistralai": "mistral_ai",
    "mistral": "mistral_ai",
    "moonshot": "moonshot_ai",
    "moonshotai": "moonshot_ai",
    "ibm.watson.ai": "ibm.watsonx.ai",
    "watsonx": "ibm.watsonx.ai",
    "together": "together_ai",
    "together-ai": "together_ai",
    "fireworks_ai": "fireworks",
    "fireworks-ai": "fireworks",
}


def provider_spelling(raw: str) -> str:
    """A gen_ai.provider.name value as the registry spells it: trimmed, lower-cased, a foreign
    spelling replaced (what the processor reads and what users may write in overrides)."""
    lowered = raw.strip().lower()
    return FOREIGN_PROVIDER_SPELLINGS.get(lowered, lowered)


# --------------------------------------------------------------------------------------
# genai-otel extensions
# --------------------------------------------------------------------------------------
# Cost, following the open gen_ai.usage.cost.* proposal.
GEN_AI_USAGE_COST_AMOUNT: Final = "gen_ai.usage.cost.amount"  # double, in COST_CURRENCY
GEN_AI_USAGE_COST_CURRENCY: Final = "gen_ai.usage.cost.currency"
GEN_AI_USAGE_COST_SOURCE: Final = "gen_ai.usage.cost.source"
COST_CURRENCY_USD: Final = "USD"


class CostSource(StrEnum):
    PROVIDER = "provider"  # the provider reported the cost; kept as is
    LOCAL = "local"  # priced by the genai-otel processor from its price table


# Our own, prefixed: price-table provenance, breakdown, unpriced reason.
GENAI_OTEL_COST_PRICE_TABLE: Final = "genai_otel.cost.price_table"  # e.g. "genai-prices 0.2.3"
GENAI_OTEL_COST_INPUT: Final = "genai_otel.cost.input"  # uncached input, USD
GENAI_OTEL_COST_OUTPUT: Final = "genai_otel.cost.output"  # output incl. reasoning, USD
GENAI_OTEL_COST_CACHE_READ: Final = "genai_otel.cost.cache_read"  # USD
GENAI_OTEL_COST_CACHE_WRITE: Final = "genai_otel.cost.cache_write"  # USD
GENAI_OTEL_COST_CACHE_SAVINGS: Final = "genai_otel.cost.cache_savings"  # USD saved by cache reads
GENAI_OTEL_COST_UNPRICED_REASON: Final = "genai_otel.cost.unpriced_reason"  # present only if unpriced
# A reported cost the processor did not trust (pricing.trust_reported_cost) and re-priced: the
# figure the span arrived with, kept for comparison ...
GENAI_OTEL_COST_REPORTED_AMOUNT: Final = "genai_otel.cost.reported_amount"  # double, USD
# string: the id (hex) of the span counted for the same call (this one is not: processors/duplicates.py)
GENAI_OTEL_COST_DUPLICATE_OF: Final = "genai_otel.cost.duplicate_of"
# ... and, when the span already carried gen_ai.usage.cost.amount (a collector keeps the first of
# two equal keys, so that one cannot be restated), the processor's price under its own name.
GENAI_OTEL_COST_AMOUNT: Final = "genai_otel.cost.amount"  # double, USD
# true: the span's usage is known to be incomplete for its source (its cost is a lower bound)
GENAI_OTEL_USAGE_INCOMPLETE: Final = "genai_otel.usage.incomplete"

# Error category (the project's taxonomy), beside the conventional error.type.
GENAI_OTEL_ERROR_CATEGORY: Final = "genai_otel.error.category"


class ErrorCategory(StrEnum):
    RATE_LIMIT = "rate_limit"
    CONTEXT_WINDOW_EXCEEDED = "context_window_exceeded"
    CONTENT_FILTER = "content_filter"
    TIMEOUT = "timeout"
    INVALID_RESPONSE = "invalid_response"
    PROVIDER_DOWN = "provider_down"
    AUTH = "auth"
    OTHER = "other"


ERROR_CATEGORY_VALUES: Final = frozenset(category.value for category in ErrorCategory)

# The words that say an error's category, for the instrumentation and the processor alike.
# Rows in precedence order: where an error's words (or, in the instrumentation, its HTTP status)
# say several categories, the first row's wins; the specific causes come before the symptoms
# (a rate limit or an oversized prompt can end in a timeout, not the other way round).
# Each row: the category, the keywords that say it in any lower-cased error text (an error
# name or code, or an error message: the instrumentation reads messages, so these must be
# unambiguous in prose), then the keywords that say it only in an error's name (`error.type`:
# an exception class name, a provider's error type or code, an HTTP status), being too common
# in prose ("json" in "response_format json_object", "500" in "max_tokens: 500").
ERROR_KEYWORDS: Final[tuple[tuple[ErrorCategory, tuple[str, ...], tuple[str, ...]], ...]] = (
    (
        ErrorCategory.RATE_LIMIT,
        ("rate_limit",),
        ("ratelimit", "429", "too many requests", "quota"),
    ),
    (
        ErrorCategory.CONTEXT_WINDOW_EXCEEDED,
        (
            "input is too long",  # Bedrock's ValidationException
            "too many input tokens",
            "context_length_exceeded",
            "prompt is too long",
            "maximum context length",
            "context window",
            "too many tokens",
            "exceeds the maximum number of tokens",  # Gemini
        ),
        (
            "context_length",
            "contextwindow",
            "context_window",
            "maximum context",
            "too long",
            "context length",
        ),
    ),
    (
        ErrorCategory.CONTENT_FILTER,
        ("content_filter", "content_policy", "content management policy", "refusal"),
        ("contentfilter", "safety", "moderation"),
    ),
    (
        ErrorCategory.TIMEOUT,
        ("deadline_exceeded",),  # Google's status
        ("timeout", "timed out", "deadline", "408"),
    ),
    (
        ErrorCategory.AUTH,
        # Google answers a bad API key with 400 INVALID_ARGUMENT and reason API_KEY_INVALID;
        # its OAuth failures are 401/403 with these statuses.
        ("api key not valid", "api_key_invalid", "unauthenticated", "permission_denied"),
        (
            "authentication",
            "permission",
            "unauthorized",
            "forbidden",
            "401",
            "403",
            "api key",
            "api_key",
            "auth",
        ),
    ),
    (
        ErrorCategory.PROVIDER_DOWN,
        ("overloaded",),
        (
            "internalserver",
            "internal_server",
            "server_error",
            "api_error",
            "remoteprotocol",
            "serviceunavailable",
            "service_unavailable",
            "connection",
            "500",
            "502",
            "503",
            "504",
            "529",
            "bad gateway",
            "unavailable",
        ),
    ),
    (
        ErrorCategory.INVALID_RESPONSE,
        (),
        ("invalid_response", "decode", "json", "validation", "parse"),
    ),
)
# The position of each category in ERROR_KEYWORDS: lower wins (`OTHER` last).
ERROR_PRECEDENCE: Final = {
    **{category: rank for rank, (category, _, _) in enumerate(ERROR_KEYWORDS)},
    ErrorCategory.OTHER: len(ERROR_KEYWORDS),
}
_TEXT_KEYWORDS: Final = tuple((category, words) for category, words, _ in ERROR_KEYWORDS if words)
_NAME_KEYWORDS: Final = tuple((category, words + name_only) for category, words, name_only in ERROR_KEYWORDS)


def error_category_of_text(text: str) -> ErrorCategory | None:
    """The category the lower-cased error `text` (codes, types, message) says, None if none."""
    for category, keywords in _TEXT_KEYWORDS:
        if any(keyword in text for keyword in keywords):
            return category
    return None


_error_category_cache: dict[str, str] = {}
_ERROR_CACHE_MAX: Final = 4096


def error_category(error_type: str) -> str:
    """Map an `error.type` (exception class name, HTTP status, provider code) to the taxonomy.

    Peers write exception class names (`RateLimitError`, `openai.APITimeoutError`), the providers'
    error types and codes (`overloaded_error`, `invalid_api_key`, OpenLIT's `rate_limited` /
    `server_error`), the anthropic SDK's own names (`client_timeout_error`) or an HTTP status.
    A category value maps to itself; a class name that says only "bad request" (`BadRequestError`,
    a context-window failure among others) stays `other`. Results are cached, boundedly."""
    cached = _error_category_cache.get(error_type)
    if cached is not None:
        return cached
    lowered = error_type.lower()
    category: str = ErrorCategory.OTHER
    if lowered in ERROR_CATEGORY_VALUES:
        category = lowered
    else:
        for candidate, keywords in _NAME_KEYWORDS:
            if any(keyword in lowered for keyword in keywords):
                category = candidate
                break
    if len(_error_category_cache) >= _ERROR_CACHE_MAX:
        _error_category_cache.clear()
    _error_category_cache[error_type] = category
    return category


# Attribution, set by genai_otel.instrumentation.attribution on every GenAI span in scope.
# user.id and gen_ai.conversation.id are conventions; feature and tenant are ours.
GENAI_OTEL_FEATURE: Final = "genai_otel.feature"
GENAI_OTEL_TENANT_ID: Final = "genai_otel.tenant.id"

# Tool calls a model asked for: names and ids only (never arguments, which are content).
GENAI_OTEL_RESPONSE_TOOL_CALL_NAMES: Final = "genai_otel.response.tool_call.names"  # string[]
GENAI_OTEL_RESPONSE_TOOL_CALL_IDS: Final = "genai_otel.response.tool_call.ids"  # string[]

# Instrumentation scopes of the genai-otel instrumentors and of the evaluation hook.
GENAI_OTEL_SCOPE_OPENAI: Final = "genai_otel.instrumentation.openai"
GENAI_OTEL_SCOPE_ANTHROPIC: Final = "genai_otel.instrumentation.anthropic"
GENAI_OTEL_SCOPE_GOOGLE_GENAI: Final = "genai_otel.instrumentation.google_genai"
GENAI_OTEL_SCOPE_BEDROCK: Final = "genai_otel.instrumentation.bedrock"
GENAI_OTEL_SCOPE_EVALUATION: Final = "genai_otel.instrumentation.evaluation"
GENAI_OTEL_SCOPE_OPENAI_AGENTS: Final = "genai_otel.instrumentation.openai_agents"
GENAI_OTEL_SCOPE_MCP: Final = "genai_otel.instrumentation.mcp"

# Handoffs between agents (the OpenAI Agents SDK's): no convention names them yet.
GENAI_OTEL_HANDOFF_FROM_AGENT: Final = "genai_otel.handoff.from_agent"
GENAI_OTEL_HANDOFF_TO_AGENT: Final = "genai_otel.handoff.to_agent"
HANDOFF_SPAN_PREFIX: Final = "handoff"
# Guardrails (the OpenAI Agents SDK's input and output guardrails), on `apply_guardrail {name}`
# spans: the guardrail's name, and whether its tripwire triggered (absent: no verdict, the
# evaluation raised or was cancelled).
GENAI_OTEL_GUARDRAIL_NAME: Final = "genai_otel.guardrail.name"
GENAI_OTEL_GUARDRAIL_TRIGGERED: Final = "genai_otel.guardrail.triggered"  # bool
# An agents SDK custom span's data values (primitive ones only, with content capture on): the
# prefix before each key.
GENAI_OTEL_CUSTOM_DATA_PREFIX: Final = "genai_otel.custom."
# MCP: which method and which server session a tool call went through (the MCP conventions' names).
MCP_METHOD_NAME: Final = "mcp.method.name"
MCP_SESSION_ID: Final = "mcp.session.id"

# --------------------------------------------------------------------------------------
# Metrics emitted by the instrumentation (OpenTelemetry SDK, GenAI conventions)
# --------------------------------------------------------------------------------------
METRIC_CLIENT_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
METRIC_CLIENT_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
METRIC_CLIENT_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"
METRIC_CLIENT_TIME_PER_OUTPUT_CHUNK: Final = "gen_ai.client.operation.time_per_output_chunk"
# Agent and tool durations (semantic-conventions-genai, gen-ai-metrics.md: histograms, seconds).
METRIC_INVOKE_AGENT_DURATION: Final = "gen_ai.invoke_agent.duration"
METRIC_EXECUTE_TOOL_DURATION: Final = "gen_ai.execute_tool.duration"

# The conventions' newer metric names (semantic-conventions-genai, its migration guide from
# v1.41.0), emitted instead of or besides the ones above under OTEL_SEMCONV_STABILITY_OPT_IN.
# Inference operations (chat, text_completion, generate_content) only: other operations keep
# gen_ai.client.operation.duration and have no token metrics in this family.
METRIC_CLIENT_INFERENCE_DURATION: Final = "gen_ai.client.inference.duration"
METRIC_CLIENT_INFERENCE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.inference.time_to_first_chunk"
# Counters (monotonic sums, by gen_ai.token.modality); input includes cache reads and writes,
# output includes reasoning, as on the span.
METRIC_CLIENT_INFERENCE_USAGE_INPUT_TOKENS: Final = "gen_ai.client.inference.usage.input_tokens"
METRIC_CLIENT_INFERENCE_USAGE_OUTPUT_TOKENS: Final = "gen_ai.client.inference.usage.output_tokens"
METRIC_CLIENT_INFERENCE_USAGE_CACHE_READ_INPUT_TOKENS: Final = (
    "gen_ai.client.inference.usage.cache_read.input_tokens"
)
METRIC_CLIENT_INFERENCE_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = (
    "gen_ai.client.inference.usage.cache_write.input_tokens"
)
METRIC_CLIENT_INFERENCE_USAGE_REASONING_OUTPUT_TOKENS: Final = (
    "gen_ai.client.inference.usage.reasoning.output_tokens"
)
# Per-operation histograms (not by modality; error.type on failures).
METRIC_CLIENT_INFERENCE_OPERATION_INPUT_TOKENS: Final = "gen_ai.client.inference.operation.input_tokens"
METRIC_CLIENT_INFERENCE_OPERATION_OUTPUT_TOKENS: Final = "gen_ai.client.inference.operation.output_tokens"
GEN_AI_TOKEN_MODALITY: Final = "gen_ai.token.modality"
# gen_ai.token.modality: the conventions' well-known values, and the provider breakdowns they map.
# `unknown` holds every token whose modality the provider did not report (never guessed as text).
TOKEN_MODALITY_TEXT: Final = "text"
TOKEN_MODALITY_IMAGE: Final = "image"
TOKEN_MODALITY_AUDIO: Final = "audio"
TOKEN_MODALITY_UNKNOWN: Final = "unknown"
# Gemini's MediaModality -> gen_ai.token.modality. VIDEO and DOCUMENT have no well-known value: the
# conventions allow a custom one, so they keep Gemini's name, lower-cased. MODALITY_UNSPECIFIED
# (and anything newer) is `unknown`.
GEMINI_TOKEN_MODALITIES: Final = {
    "TEXT": TOKEN_MODALITY_TEXT,
    "IMAGE": TOKEN_MODALITY_IMAGE,
    "AUDIO": TOKEN_MODALITY_AUDIO,
    "VIDEO": "video",
    "DOCUMENT": "document",
}
INFERENCE_OPERATIONS: Final = frozenset(
    {Operation.CHAT.value, Operation.TEXT_COMPLETION.value, Operation.GENERATE_CONTENT.value}
)

# OTEL_SEMCONV_STABILITY_OPT_IN (comma-separated): which metric names the instrumentation emits.
ENV_SEMCONV_STABILITY_OPT_IN: Final = "OTEL_SEMCONV_STABILITY_OPT_IN"
SEMCONV_OPT_IN_GEN_AI_LATEST: Final = "gen_ai_latest_experimental"  # the conventions' value
SEMCONV_OPT_IN_GEN_AI_DUP: Final = "gen_ai_latest_experimental/dup"  # ours, as http/dup


class MetricNames(StrEnum):
    """Which GenAI client metric names are emitted (`OTEL_SEMCONV_STABILITY_OPT_IN`)."""

    DEFAULT = "default"  # today's: token.usage, operation.duration, operation.time_to_first_chunk
    LATEST = "latest"  # the inference.* names only
    DUP = "dup"  # both


TOKEN_USAGE_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
DURATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
TIME_TO_FIRST_CHUNK_BUCKETS: Final = DURATION_BUCKETS
# Agent runs last longer than one model call: the same doubling, to about 11 minutes.
AGENT_RUN_DURATION_BUCKETS: Final = (*DURATION_BUCKETS, 163.84, 327.68, 655.36)

# --------------------------------------------------------------------------------------
# Content capture (opt-in)
# --------------------------------------------------------------------------------------
ENV_CAPTURE_MESSAGE_CONTENT: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
# Longest captured content value, in characters; longer values are cut (default below).
ENV_CAPTURE_MESSAGE_CONTENT_MAX_LENGTH: Final = (
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT_MAX_LENGTH"
)
DEFAULT_CAPTURE_MESSAGE_CONTENT_MAX_LENGTH: Final = 8192


class ContentCapture(StrEnum):
    NO_CONTENT = "NO_CONTENT"
    SPAN_ONLY = "SPAN_ONLY"
    EVENT_ONLY = "EVENT_ONLY"
    SPAN_AND_EVENT = "SPAN_AND_EVENT"


# --------------------------------------------------------------------------------------
# Metrics derived by the processor (Prometheus exposition names, counters with _total)
# --------------------------------------------------------------------------------------
# Label keys: an allow-list of low-cardinality keys. `model` is the *request* model
# (falling back to the response model), so errors and successes of one call site share a
# series; `error_type` is an ErrorCategory value, or "" on success.
LABEL_SERVICE: Final = "service"
LABEL_PROVIDER: Final = "provider"
LABEL_MODEL: Final = "model"
LABEL_OPERATION: Final = "operation"
LABEL_STATUS: Final = "status"  # "ok" | "error"
LABEL_ERROR_TYPE: Final = "error_type"
LABEL_TOKEN_TYPE: Final = "token_type"  # TokenType values
LABEL_COST_TYPE: Final = "cost_type"  # input | output | cache_read | cache_write
LABEL_USER: Final = "user"  # bounded top-N, the rest "other"
LABEL_FEATURE: Final = "feature"  # bounded top-N, the rest "other"
LABEL_EVALUATION: Final = "evaluation"  # gen_ai.evaluation.name
LABEL_REASON: Final = "reason"
LABEL_TOOL: Final = "tool"  # gen_ai.tool.name, bounded top-N, the rest "other"
LABEL_AGENT: Final = "agent"  # gen_ai.agent.name, bounded top-N, the rest "other"
LABEL_GUARDRAIL: Final = "guardrail"  # genai_otel.guardrail.name, bounded top-N, the rest "other"
LABEL_TRIGGERED: Final = "triggered"  # "true" | "false": genai_otel.guardrail.triggered
OTHER_LABEL_VALUE: Final = "other"
# Every label key a derived metric may carry (the processor's allow-list draws from these).
METRIC_LABEL_KEYS: Final = (
    LABEL_SERVICE,
    LABEL_PROVIDER,
    LABEL_MODEL,
    LABEL_OPERATION,
    LABEL_STATUS,
    LABEL_ERROR_TYPE,
    LABEL_TOKEN_TYPE,
    LABEL_COST_TYPE,
    LABEL_USER,
    LABEL_FEATURE,
    LABEL_EVALUATION,
    LABEL_REASON,
    LABEL_TOOL,
    LABEL_AGENT,
    LABEL_GUARDRAIL,
    LABEL_TRIGGERED,
)


class TokenType(StrEnum):
    INPUT = "input"  # all input, cache read and write included
    OUTPUT = "output"  # all output, reasoning included
    CACHE_READ = "cache_read"
    CACHE_WRITE = "cache_write"
    REASONING = "reasoning"


# {service, provider, model, operation, status, error_type}
PROM_LLM_REQUESTS: Final = "llm_requests_total"
# {service, provider, model, operation, token_type}
PROM_LLM_TOKENS: Final = "llm_tokens_total"
# {service, provider, model, operation}: total cost of priced calls
PROM_LLM_COST: Final = "llm_cost_usd_total"
# {service, provider, model, operation, cost_type}: the same cost split by token type
PROM_LLM_COST_BREAKDOWN: Final = "llm_cost_breakdown_usd_total"
# {service, provider, model}: what cache reads saved against the uncached input price
PROM_LLM_CACHE_SAVINGS: Final = "llm_cache_savings_usd_total"
# histograms {service, provider, model, operation, status} / {service, provider, model, operation}
PROM_LLM_REQUEST_DURATION: Final = "llm_request_duration_seconds"
PROM_LLM_TIME_TO_FIRST_CHUNK: Final = "llm_time_to_first_chunk_seconds"
PROM_LLM_COST_PER_REQUEST: Final = "llm_cost_per_request_usd"
PROM_LLM_OUTPUT_TOKENS_PER_SECOND: Final = "llm_output_tokens_per_second"
# {provider, model, reason}
PROM_LLM_UNPRICED_REQUESTS: Final = "llm_unpriced_requests_total"
# {service, provider, model}: calls whose usage is known incomplete (their cost is a lower bound)
PROM_LLM_USAGE_INCOMPLETE: Final = "llm_usage_incomplete_total"
# {service, user} and {service, feature}: bounded top-N, the rest as "other"
PROM_LLM_USER_COST: Final = "llm_user_cost_usd_total"
PROM_LLM_FEATURE_COST: Final = "llm_feature_cost_usd_total"
# {service, provider, model, evaluation}: LLM-as-judge and other scores, on a 0-10 scale
PROM_LLM_QUALITY_SCORE: Final = "llm_quality_score"
# {service, provider, model, evaluation}: results of the safety evaluations (the processor's
# `evaluations.safety_thresholds`: hallucination, toxicity), and those that flagged the response
PROM_LLM_SAFETY_EVALUATIONS: Final = "llm_safety_evaluations_total"
PROM_LLM_SAFETY_FLAGGED: Final = "llm_safety_flagged_total"
# {service, tool, status}: execute_tool spans (a tool an agent or an MCP client ran)
PROM_LLM_TOOL_CALLS: Final = "llm_tool_calls_total"
# {service, tool, status}: SERVER-kind execute_tool spans (a tool this service served, an MCP
# server's tools/call): the server's view of calls, whoever made them (never in llm_tool_calls_total)
PROM_LLM_TOOL_EXECUTIONS: Final = "llm_tool_executions_total"
# {service, guardrail, triggered}: apply_guardrail spans with a verdict
PROM_LLM_GUARDRAIL_EVALUATIONS: Final = "llm_guardrail_evaluations_total"
# histogram {service, agent, status}: invoke_agent spans, start to end (tools and model calls inside)
PROM_LLM_AGENT_RUN_DURATION: Final = "llm_agent_run_duration_seconds"

COST_PER_REQUEST_BUCKETS: Final = (
    0.00001, 0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
)  # fmt: skip
QUALITY_SCORE_BUCKETS: Final = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0)
OUTPUT_TOKENS_PER_SECOND_BUCKETS: Final = (1, 5, 10, 20, 40, 60, 80, 100, 150, 200, 400, 800)

# The processor's own health: genai_otel_processor_*
PROM_PROCESSOR_SPANS_RECEIVED: Final = "genai_otel_processor_spans_received_total"  # {kind}
PROM_PROCESSOR_SPANS_FORWARDED: Final = "genai_otel_processor_spans_forwarded_total"
PROM_PROCESSOR_SPANS_INVALID: Final = "genai_otel_processor_spans_invalid_total"  # {reason}
PROM_PROCESSOR_SPANS_DROPPED: Final = "genai_otel_processor_spans_dropped_total"  # {reason}
PROM_PROCESSOR_REQUESTS_REJECTED: Final = "genai_otel_processor_requests_rejected_total"  # {reason}
PROM_PROCESSOR_EXPORT_FAILURES: Final = "genai_otel_processor_export_failures_total"  # {reason}
PROM_PROCESSOR_QUEUE_DEPTH: Final = "genai_otel_processor_queue_spans"  # gauge
PROM_PROCESSOR_QUEUE_CAPACITY: Final = "genai_otel_processor_queue_capacity_spans"  # gauge
PROM_PROCESSOR_SERIES_OVERFLOW: Final = "genai_otel_processor_label_overflow_total"  # {label}
# {counted_scope, duplicate_scope}: spans found to describe a call another span was counted for
PROM_PROCESSOR_DUPLICATE_SPANS: Final = "genai_otel_processor_duplicate_spans_total"
# {kind}: copies of spans received before (the same trace and span id: a sender's retry of a
# request that reached this processor), enriched as the first copy and counted in no other metric
PROM_PROCESSOR_SPANS_REDELIVERED: Final = "genai_otel_processor_spans_redelivered_total"
PROM_PROCESSOR_PRICE_TABLE_INFO: Final = "genai_otel_processor_price_table_info"  # {version} 1
# {accelerated="true"|"false"} 1: whether the C request walk (_wirescan) is in use
PROM_PROCESSOR_INFO: Final = "genai_otel_processor_info"
