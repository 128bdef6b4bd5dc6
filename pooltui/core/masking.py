"""Showing a secret without revealing it: masks and fingerprints."""

from __future__ import annotations

import hashlib
import re

_PREFIXES = ("sk-ant-", "sk-proj-", "sk-or-v1-", "sk-sim-", "sk-test-", "sk-", "gsk_", "AIza", "key-")


def mask(secret: str) -> str:
    """``sk-ant-…a1b2``: a known prefix and the last four characters, never more."""
    secret = secret.strip()
    if len(secret) < 12:
        return "…" + secret[-2:] if len(secret) >= 6 else "…"
    prefix = next((p for p in _PREFIXES if secret.startswith(p)), "")
    return f"{prefix}…{secret[-4:]}"


def fingerprint(secret: str) -> str:
    """A short stable id of a secret (8 hex chars of SHA-256), safe to show and log."""
    return hashlib.sha256(secret.strip().encode()).hexdigest()[:8]


_KEYLIKE = re.compile(
    r"(?:sk-ant-[A-Za-z0-9_-]{8,}|sk-proj-[A-Za-z0-9_-]{8,}|sk-or-v1-[A-Za-z0-9]{8,}|sk-[A-Za-z0-9_-]{16,}"
    r"|gsk_[A-Za-z0-9]{16,}|AIza[0-9A-Za-z_-]{20,}|xai-[A-Za-z0-9]{16,})"
)


def redact(text: str) -> str:
    """``text`` with anything that looks like an API key replaced by its mask."""
    if not text or ("sk-" not in text and "gsk_" not in text and "AIza" not in text and "xai-" not in text):
        return text
    return _KEYLIKE.sub(lambda m: mask(m.group(0)), text)
