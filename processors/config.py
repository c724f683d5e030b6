"""The processor's configuration: one typed model, the only place defaults live.

Precedence: command-line flag > environment (`GENAI_OTEL_PROCESSOR_*`) > YAML file > default.
Environment names are the key path upper-cased, joined with double underscores, e.g.
`GENAI_OTEL_PROCESSOR_FORWARD__QUEUE_MAX_SPANS=200000`; list values are comma-separated;
mappings are `key=value` pairs separated by commas. An invalid value fails at start with a
`ConfigError` that names the key, the value and the rule it broke.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from genai_otel import semconv as sc

from .duplicates import DEFAULT_MAX_SPANS, DEFAULT_WINDOW_SECONDS

ENV_PREFIX: Final = "GENAI_OTEL_PROCESSOR_"
ALLOWED_LABELS: Final = sc.METRIC_LABEL_KEYS


class ConfigError(ValueError):
    """A configuration value broke a rule; the message names key, value and rule."""


def _address(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be HOST:PORT with a port from 0 to 65535")
    return value


MIB: Final = 1024 * 1024
_BYTE_UNITS: Final = {"kib": 1024, "mib": MIB}


def _byte_size(value: object) -> object:
    """Sizes such as "4MiB" or "512KiB" in bytes; anything else is left to the field's type check."""
    if isinstance(value, str):
        text = value.strip().lower()
        for unit, factor in _BYTE_UNITS.items():
            if text.endswith(unit) and text[: -len(unit)].strip().isdigit():
                return int(text[: -len(unit)]) * factor
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class RetryConfig(_Section):
    """Retries of a forward that failed with a retryable status (exponential backoff + jitter)."""

    initial_backoff_seconds: float = Field(default=0.2, gt=0, le=60)
    max_backoff_seconds: float = Field(default=5.0, gt=0, le=600)
    multiplier: float = Field(default=2.0, ge=1, le=10)
    jitter: float = Field(default=0.2, ge=0, le=1)  # +- this fraction of each delay
    max_elapsed_seconds: float = Field(default=300.0, gt=0)  # then the batch is dropped, counted

    @model_validator(mode="after")
    def _ordered(self) -> RetryConfig:
        if self.max_backoff_seconds < self.initial_backoff_seconds:
            raise ValueError("max_backoff_seconds must be >= initial_backoff_seconds")
        return self


# RFC 6750's b64token: what an `authorization: Bearer` header value can carry unchanged.
_BEARER_TOKEN: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# Values never shown in an error message: anything inside an `auth` section but file paths.
SECRET_SECTION: Final = "auth"


def bearer_token_problem(token: str) -> str | None:
    """Why `token` cannot be a bearer token, in words that do not repeat it; None if it can."""
    if not token:
        return "must not be empty"
    if not _BEARER_TOKEN.fullmatch(token):
        return "must be one RFC 6750 token: letters, digits and -._~+/ then optional '=' padding"
    return None


def _secret_token(value: SecretStr | None) -> SecretStr | None:
    if value is not None and (problem := bearer_token_problem(value.get_secret_value())):
        raise ValueError(problem)
    return value


def _one_token_source(section: BaseModel) -> None:
    if getattr(section, "bearer_token", None) is not None and getattr(section, "bearer_token_file", None):
        raise ValueError("set bearer_token_file or bearer_token, not both")


def _cert_with_key(cert_file: Path | None, key_file: Path | None) -> None:
    if (cert_file is None) != (key_file is None):
        raise ValueError("cert_file and key_file go together: set both or neither")


class ListenTlsConfig(_Section):
    """TLS on the OTLP listener; off (plaintext) unless cert_file and key_file are set.

    The files are re-read when they change, for connections made after that (rotation without
    restart). With client_ca_file, mutual TLS: a client must present a certificate it signed."""

    cert_file: Path | None = None  # PEM certificate chain, leaf first
    key_file: Path | None = None  # PEM private key of that certificate
    client_ca_file: Path | None = None  # PEM CA bundle; set: clients must present a certificate

    @model_validator(mode="after")
    def _complete(self) -> ListenTlsConfig:
        _cert_with_key(self.cert_file, self.key_file)
        if self.client_ca_file is not None and self.cert_file is None:
            raise ValueError("client_ca_file (mutual TLS) needs cert_file and key_file")
        return self

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


class _BearerTokenConfig(_Section):
    """A bearer token from a file (re-read when it changes) or inline, never both; off unless set."""

    bearer_token_file: Path | None = None
    bearer_token: SecretStr | None = None

    _check_token = field_validator("bearer_token")(classmethod(lambda cls, v: _secret_token(v)))

    @model_validator(mode="after")
    def _one_source(self) -> _BearerTokenConfig:
        _one_token_source(self)
        return self

    @property
    def enabled(self) -> bool:
        return self.bearer_token_file is not None or self.bearer_token is not None


class ListenAuthConfig(_BearerTokenConfig):
    """Bearer-token auth on OTLP exports. The file holds one or more accepted tokens, one per line
    (two during a rotation); the inline token (e.g. env GENAI_OTEL_PROCESSOR_AUTH__BEARER_TOKEN) is
    fixed for the process."""


class ForwardTlsConfig(_Section):
    """TLS to the next hop; plaintext unless `enabled` or one of the files is set."""

    enabled: bool = False  # on with the system's trusted roots when ca_file is unset
    ca_file: Path | None = None  # PEM CA bundle that signed the next hop's certificate
    cert_file: Path | None = None  # client certificate, for a next hop that requires mutual TLS
    key_file: Path | None = None
    server_name_override: str | None = None  # the name checked in the next hop's certificate

    @model_validator(mode="after")
    def _complete(self) -> ForwardTlsConfig:
        _cert_with_key(self.cert_file, self.key_file)
        return self

    @property
    def active(self) -> bool:
        return self.enabled or self.ca_file is not None or self.cert_file is not None


class ForwardAuthConfig(_BearerTokenConfig):
    """A bearer token sent as `authorization: Bearer <token>` on every export to the next hop; the
    file holds the token (its first non-blank line)."""


class ForwardConfig(_Section):
    endpoint: str = (
        "127.0.0.1:4319"  # the collector's second OTLP receiver (.env COLLECTOR_ENRICHED_OTLP_PORT)
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    concurrency: int = Field(default=2, ge=1, le=64)  # forwards in flight
    queue_max_spans: int = Field(default=100_000, ge=1)  # accepted but not yet forwarded
    backpressure_retry_after_seconds: float = Field(default=1.0, gt=0, le=60)  # RetryInfo we send
    # The largest export the next hop takes: the collector's `otlp/enriched` receiver's
    # max_recv_msg_size_mib. The stack sets both from .env ENRICHED_MAX_RECV_MSG_MIB (compose
    # passes it as "<n>MiB"). No export is ever larger: bigger requests are split by span.
    max_message_bytes: int = Field(default=4 * MIB, ge=64 * 1024, le=2**31 - 1)
    # Requests waiting in the queue are forwarded together, as one export of at most this many
    # bytes. Unset: max_message_bytes; never more than it. 0: one export per accepted request.
    max_batch_bytes: int | None = Field(default=None, ge=0)
    # When the sender hears that its export succeeded. "forwarded": once the next hop acknowledged
    # the request's spans, so a crash of this process (kill -9, OOM) loses nothing the sender
    # believes delivered: the collector's persistent queue sends it again (at-least-once).
    # "accepted": as soon as it is queued here (the sender waits less; a crash loses the queue).
    # A forward still unacknowledged 1 s before the sender's deadline (or after timeout_seconds
    # when it set none) is answered as accepted, since a re-send would only queue it twice.
    acknowledge: Literal["forwarded", "accepted"] = "forwarded"
    retry: RetryConfig = RetryConfig()
    tls: ForwardTlsConfig = ForwardTlsConfig()
    auth: ForwardAuthConfig = ForwardAuthConfig()

    _check_endpoint = field_validator("endpoint")(classmethod(lambda cls, v: _address(v)))
    _sizes = field_validator("max_message_bytes", "max_batch_bytes", mode="before")(
        classmethod(lambda cls, v: _byte_size(v))
    )

    @field_validator("max_batch_bytes")
    @classmethod
    def _batch_fits(cls, value: int | None, info: ValidationInfo) -> int | None:
        limit = info.data.get("max_message_bytes")
        if value is not None and limit is not None and value > limit:
            raise ValueError(f"must not exceed forward.max_message_bytes ({limit})")
        return value

    @property
    def batch_bytes(self) -> int:
        """max_batch_bytes, defaulting to max_message_bytes."""
        return self.max_message_bytes if self.max_batch_bytes is None else self.max_batch_bytes


class PricingConfig(_Section):
    overrides_file: Path | None = None  # custom models and negotiated discounts (YAML)
    cache_entries: int = Field(default=10_000, ge=16)
    # Whose cost a span already carries is kept as the cost: only the provider's or a gateway's
    # (`gen_ai.usage.cost.source=provider`), every reported cost, or none (all re-priced).
    trust_reported_cost: Literal["provider", "all", "none"] = "provider"


class DuplicatesConfig(_Section):
    # The second span of one call (processors/duplicates.py): how many GenAI spans are remembered
    # (0: duplicates are not looked for) and for how long.
    max_spans: int = Field(default=DEFAULT_MAX_SPANS, ge=0, le=100_000_000)
    window_seconds: float = Field(default=DEFAULT_WINDOW_SECONDS, ge=0)


class CallLogConfig(_Section):
    # One JSON line per model call (processors/call_log.py): a file path, `-` for standard
    # output, or unset (off). Rotated at max_bytes into path.1 ... path.<backups>.
    path: str | None = None
    max_bytes: int = Field(default=100 * 1024 * 1024, ge=4096)
    backups: int = Field(default=3, ge=0, le=100)


class LabelsConfig(_Section):
    allow: list[str] = list(ALLOWED_LABELS)
    # Distinct values admitted per label before the rest become "other".
    max_values: dict[str, int] = {
        sc.LABEL_SERVICE: 200,
        sc.LABEL_PROVIDER: 50,
        sc.LABEL_MODEL: 500,
        sc.LABEL_OPERATION: 30,
        sc.LABEL_ERROR_TYPE: 20,
        sc.LABEL_EVALUATION: 50,
        sc.LABEL_REASON: 20,
        sc.LABEL_TOOL: 100,
        sc.LABEL_AGENT: 50,
        sc.LABEL_GUARDRAIL: 50,
    }
    top_users: int = Field(default=100, ge=0)
    top_features: int = Field(default=50, ge=0)
    # Distinct label sets kept per table (call series by service, provider, model, operation;
    # quality-score keys; user and feature cost keys), each; a new one beyond it is recorded
    # under one all-"other" set. Sized so a full scrape stays a few MB (README: "Series cap").
    max_series: int = Field(default=1000, ge=1)
    # How user ids become the `user` label: as sent (raw), a short keyed hash (hmac: the first 16
    # hex digits of HMAC-SHA256 with the secret in user_id_hmac_key_file, stable while the key is),
    # or not at all (drop: user cost is kept per service only).
    user_id: Literal["raw", "hmac", "drop"] = "raw"
    user_id_hmac_key_file: Path | None = None

    @model_validator(mode="after")
    def _hmac_key(self) -> LabelsConfig:
        if self.user_id == "hmac":
            if self.user_id_hmac_key_file is None:
                raise ValueError("user_id=hmac needs user_id_hmac_key_file (a file holding the secret key)")
            try:
                key = self.user_id_hmac_key_file.read_bytes().strip()
            except OSError as exc:
                raise ValueError(f"user_id_hmac_key_file cannot be read: {exc.strerror}") from None
            if len(key) < 16:
                raise ValueError("user_id_hmac_key_file must hold a key of at least 16 bytes")
        return self

    @field_validator("allow")
    @classmethod
    def _known(cls, labels: list[str]) -> list[str]:
        unknown = sorted(set(labels) - set(ALLOWED_LABELS))
        if unknown:
            raise ValueError(f"unknown label(s) {unknown}; known: {list(ALLOWED_LABELS)}")
        return labels

    @field_validator("max_values")
    @classmethod
    def _positive(cls, caps: dict[str, int]) -> dict[str, int]:
        for label, cap in caps.items():
            if label not in ALLOWED_LABELS:
                raise ValueError(f"unknown label {label!r}")
            if cap < 1:
                raise ValueError(f"cap for {label!r} must be >= 1")
        return caps


class EvaluationsConfig(_Section):
    # Safety evaluations (`gen_ai.evaluation.name` -> threshold): their results are counted in
    # llm_safety_evaluations_total and, when they flag the response, llm_safety_flagged_total,
    # instead of llm_quality_score (a flag of 1 is bad; a quality score of 10 is good). A boolean
    # true, a score (0-10) at or above the threshold, or a label "true"/"1" with no score flags it.
    safety_thresholds: dict[str, float] = {sc.EVALUATION_HALLUCINATION: 0.5, sc.EVALUATION_TOXICITY: 0.5}

    @field_validator("safety_thresholds")
    @classmethod
    def _thresholds(cls, thresholds: dict[str, float]) -> dict[str, float]:
        for name, threshold in thresholds.items():
            if not 1 <= len(name) <= 256:
                raise ValueError(f"evaluation name {name!r} must have 1 to 256 characters")
            if not 0 < threshold <= 10:
                raise ValueError(f"threshold of {name!r} must be above 0 and at most 10 (the score scale)")
        return thresholds


class LimitsConfig(_Section):
    max_tokens_per_span: int = Field(default=100_000_000, ge=1)  # larger counts are "absurd"
    max_attribute_length: int = Field(default=256, ge=8)  # longer model/user/... values are invalid
    max_receive_message_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)


def _readable_file(value: Path | None) -> Path | None:
    """A secret or certificate file is checked at start, not at the first scrape."""
    if value is not None and not os.access(value, os.R_OK):
        raise ValueError("must be a readable file")
    return value


class MetricsTlsConfig(_Section):
    """TLS on /metrics and /healthz: both files or neither; re-read when they change."""

    cert_file: Path | None = None
    key_file: Path | None = None

    _check_files = field_validator("cert_file", "key_file")(classmethod(lambda cls, v: _readable_file(v)))

    @model_validator(mode="after")
    def _pair(self) -> MetricsTlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: set both or neither")
        return self


class MetricsAuthConfig(_Section):
    """Who may read /metrics (/healthz stays open: it tells only whether the processor is up)."""

    bearer_token_file: Path | None = None  # one token per line; any of them is accepted
    basic_users_file: Path | None = None  # `user:password` per line

    _check_files = field_validator("bearer_token_file", "basic_users_file")(
        classmethod(lambda cls, v: _readable_file(v))
    )

    @model_validator(mode="after")
    def _one(self) -> MetricsAuthConfig:
        if self.bearer_token_file is not None and self.basic_users_file is not None:
            raise ValueError("bearer_token_file and basic_users_file exclude each other: choose one")
        return self


class MetricsConfig(_Section):
    tls: MetricsTlsConfig = MetricsTlsConfig()
    auth: MetricsAuthConfig = MetricsAuthConfig()


class ProcessorConfig(_Section):
    # Loopback by default: outside a container nothing else needs to reach the processor, and the
    # container image sets 0.0.0.0 explicitly (Dockerfile, docker-compose.yml).
    listen: str = "127.0.0.1:14317"  # OTLP gRPC in (.env PROCESSOR_OTLP_PORT)
    metrics_listen: str = "127.0.0.1:9464"  # Prometheus /metrics (.env PROCESSOR_METRICS_PORT)
    metrics: MetricsConfig = MetricsConfig()
    tls: ListenTlsConfig = ListenTlsConfig()  # on the OTLP listener
    auth: ListenAuthConfig = ListenAuthConfig()  # on the OTLP listener (the health service is open)
    forward: ForwardConfig = ForwardConfig()
    pricing: PricingConfig = PricingConfig()
    duplicates: DuplicatesConfig = DuplicatesConfig()
    call_log: CallLogConfig = CallLogConfig()
    labels: LabelsConfig = LabelsConfig()
    evaluations: EvaluationsConfig = EvaluationsConfig()
    limits: LimitsConfig = LimitsConfig()
    exemplars: bool = True  # OpenMetrics exemplars carrying trace ids
    shutdown_grace_seconds: float = Field(default=20.0, gt=0, le=600)
    log_level: str = "INFO"

    _check_listen = field_validator("listen", "metrics_listen")(classmethod(lambda cls, v: _address(v)))


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------
def _set_path(target: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        nested = target.setdefault(part, {})
        if not isinstance(nested, dict):
            shown = _masked(nested, tuple(path[: path.index(part) + 1]))
            raise ConfigError(f"{'.'.join(path)}: cannot set inside non-mapping value {shown!r}")
        target = nested
    target[path[-1]] = value


def _model_for(path: list[str]) -> tuple[type[BaseModel] | None, str]:
    model: type[BaseModel] | None = ProcessorConfig
    for part in path[:-1]:
        field = model.model_fields.get(part) if model else None
        annotation = field.annotation if field else None
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return model, path[-1]


def _env_value(path: list[str], raw: str) -> Any:
    """Env strings become lists or mappings where the model expects them."""
    model, name = _model_for(path)
    field = model.model_fields.get(name) if model else None
    annotation = str(field.annotation) if field else ""
    if annotation.startswith("list"):
        return [item.strip() for item in raw.split(",") if item.strip()]
    if annotation.startswith("dict"):
        pairs = [item.split("=", 1) for item in raw.split(",") if item.strip()]
        if any(len(p) != 2 for p in pairs):
            raise ConfigError(f"{'.'.join(path)}={raw!r}: expected key=value pairs separated by commas")
        return {k.strip(): v.strip() for k, v in pairs}
    return raw


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        _set_path(values, path, _env_value(path, raw))
    return values


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _is_secret(path: tuple[str | int, ...]) -> bool:
    """A value under an `auth` section that is not a file path: a token, or a misspelt key that may
    hold one."""
    return SECRET_SECTION in path and not str(path[-1]).endswith("_file")


def _masked(value: Any, path: tuple[str | int, ...]) -> Any:
    """`value` as an error message may show it: secrets replaced by "***", also inside a mapping
    (a section-level error's input is the whole section)."""
    if isinstance(value, Mapping):
        return {key: _masked(item, (*path, key)) for key, item in value.items()}
    if isinstance(value, SecretStr) or (value is not None and _is_secret(path)):
        return "***"
    return value


def _explain(exc: ValidationError, sources: Mapping[str, str]) -> str:
    lines = []
    for error in exc.errors():
        key = ".".join(str(p) for p in error["loc"])
        origin = sources.get(key, "")
        message = error["msg"].removeprefix("Value error, ")
        shown = _masked(error.get("input"), tuple(error["loc"]))
        lines.append(f"{key}={shown!r}{origin}: {message}")
    return "invalid processor configuration: " + "; ".join(lines)


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and key not in ("max_values", "safety_thresholds"):
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def load_config(
    flags: Mapping[str, Any] | None = None,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> ProcessorConfig:
    """Build the config from a YAML file, the environment and flags (nested dicts of values)."""
    environ = os.environ if environ is None else environ
    file_values: dict[str, Any] = {}
    if config_file is not None:
        try:
            loaded = yaml.safe_load(config_file.read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"--config={str(config_file)!r}: cannot read: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"--config={str(config_file)!r}: not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"--config={str(config_file)!r}: expected a mapping at the top level")
        file_values = loaded
    env_values = _env_overrides(environ)
    flag_values = dict(flags or {})
    sources: dict[str, str] = {}
    for origin, values in (
        (f" (from {config_file})", file_values),
        (" (from env)", env_values),
        (" (from flag)", flag_values),
    ):
        for key in _flatten(values):
            sources[key] = origin
    merged = _merge(_merge(file_values, env_values), flag_values)
    try:
        return ProcessorConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, sources)) from exc
