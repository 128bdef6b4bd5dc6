"""Showing a secret without revealing it: masks and fingerprints."""

from __future__ import annotations

import hashlib

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
