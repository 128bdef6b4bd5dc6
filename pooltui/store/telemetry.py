"""``[telemetry]``: OpenTelemetry traces from the proxy (off unless an endpoint is set here or in ``OTEL_*``), and
the file its log lines go to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pooltui.core import validate

KNOWN = ("endpoint", "service_name", "capture_content", "propagate_upstream", "schedule_delay_ms", "log_file")


@dataclass(slots=True)
class TelemetryConfig:
    """Where traces go and what they may carry. Without ``endpoint`` the standard ``OTEL_EXPORTER_OTLP_*``
    variables decide; neither set: tracing is off."""

    endpoint: str | None = None  # OTLP/HTTP base URL (``/v1/traces`` is added), e.g. http://localhost:4318
    service_name: str = "pooltui"
    capture_content: bool = False  # prompt and completion text on the spans (scrubbed of secrets)
    propagate_upstream: bool = False  # send the caller's trace context on to the provider
    schedule_delay_ms: int | None = None  # how long spans wait to be batched (the SDK's default: 5000)
    log_file: str | None = None  # where the proxy's log lines go instead of stderr (the monitor's: off without it)
    raw: dict[str, Any] = field(default_factory=dict)  # as written, to save back unchanged


def parse_telemetry(raw: Any) -> TelemetryConfig:
    """Check a ``[telemetry]`` table: an http(s) endpoint, a service name, flags."""
    if not isinstance(raw, dict):
        raise ValueError("'telemetry' must be a table")
    data = dict(raw)
    endpoint = data.pop("endpoint", None)
    if endpoint is not None:
        try:
            endpoint = validate.base_url(endpoint)
        except ValueError as exc:
            raise ValueError(f"telemetry.endpoint: {exc}") from None
    name = data.pop("service_name", "pooltui")
    if not isinstance(name, str) or not name.strip() or len(name) > 128:
        raise ValueError("telemetry.service_name must be a short non-empty string")
    out = TelemetryConfig(endpoint, name.strip(), raw=dict(raw))
    out.capture_content = validate.flag("telemetry.capture_content", data.pop("capture_content", False))
    out.propagate_upstream = validate.flag("telemetry.propagate_upstream", data.pop("propagate_upstream", False))
    delay = data.pop("schedule_delay_ms", None)
    out.schedule_delay_ms = None if delay is None else validate.whole("telemetry.schedule_delay_ms", delay, 1, 60_000)
    log_file = data.pop("log_file", None)
    if log_file is not None and (not isinstance(log_file, str) or not log_file.strip() or "\x00" in log_file):
        raise ValueError("telemetry.log_file must be a file path")
    out.log_file = log_file.strip() if log_file is not None else None
    if data:
        raise ValueError(f"telemetry: unknown setting {sorted(data)[0]!r} (known: {', '.join(KNOWN)})")
    return out
