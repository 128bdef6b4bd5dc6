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


# ------------------------------------------------------------------------------------------- scrubbing
_TRIE_ABOVE = 8  # more known secrets than this: one trie-shaped regex instead of a substring test each


def _trie_pattern(words: list[str]) -> str:
    """A regex matching any of ``words``, shaped as a trie so it fails fast on the first wrong character."""
    trie: dict = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict) -> str:
        ends = "" in node
        branches = [re.escape(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if ends else body

    return emit(trie)


class SecretScrubber:
    """Every secret this process knows, and the one place that takes them out of text leaving it.

    Exact match, not only known prefixes (a Mistral-style key has none): whatever an upstream echoes, an
    event, trace, history row, HTTP response or CLI line passes through here before it leaves.
    """

    def __init__(self) -> None:
        self._masks: dict[str, str] = {}
        self._bmasks: list[tuple[bytes, bytes]] = []
        self._pattern: re.Pattern[str] | None = None
        self._bpattern: re.Pattern[bytes] | None = None
        self._prefixes: frozenset[bytes] = frozenset()
        self._starts: re.Pattern[bytes] | None = None  # any byte a known secret begins with
        self.longest = 0
        self._dirty = False

    def remember(self, secret: str | None) -> None:
        secret = (secret or "").strip()
        if len(secret) < 8 or secret in self._masks:  # shorter is no credential worth the false hits
            return
        self._masks[secret] = mask(secret)
        self._dirty = True

    def _rebuild(self) -> None:
        """Derived lookups, rebuilt once after secrets were added (not per secret: pools load many at once)."""
        self._dirty = False
        ordered = sorted(self._masks, key=len, reverse=True)
        self._bmasks = [(s.encode(), self._masks[s].encode()) for s in ordered]
        self.longest = max((len(s) for s, _ in self._bmasks), default=0)  # in bytes (a non-ASCII secret's are more)
        self._prefixes = frozenset(s[:i] for s, _ in self._bmasks for i in range(1, len(s)))
        firsts = sorted({s[0] for s, _ in self._bmasks})
        self._starts = re.compile(b"[" + b"".join(re.escape(bytes([c])) for c in firsts) + b"]") if firsts else None
        if len(ordered) > _TRIE_ABOVE:
            pattern = _trie_pattern(ordered)
            self._pattern = re.compile(pattern)
            self._bpattern = re.compile(pattern.encode())
        else:
            self._pattern = self._bpattern = None

    def __contains__(self, secret: str) -> bool:
        return secret in self._masks

    def scrub(self, text: str) -> str:
        """``text`` with every known secret (and anything key-shaped) replaced by its mask."""
        if not text:
            return text
        if self._dirty:
            self._rebuild()
        if self._pattern is not None:
            text = self._pattern.sub(lambda m: self._masks[m.group(0)], text)
        else:
            for secret, masked in self._masks.items():
                if secret in text:
                    text = text.replace(secret, masked)
        return redact(text)

    def scrub_bytes(self, data: bytes) -> bytes:
        """The same for bytes (a response body), without decoding what needs no change."""
        if self._dirty:
            self._rebuild()
        if not data or not self._bmasks:
            return data
        if self._bpattern is not None:
            return self._bpattern.sub(lambda m: self._masks[m.group(0).decode()].encode(), data)
        for secret, masked in self._bmasks:
            if secret in data:
                data = data.replace(secret, masked)
        return data

    def held_back(self, data: bytes) -> int:
        """How many bytes at the end of ``data`` could be the start of a secret cut by a chunk boundary."""
        if self._dirty:
            self._rebuild()
        starts = self._starts
        if not self._prefixes or starts is None or not data or data[-1:] in b" \t\r\n":
            return 0
        # only where a secret could begin (a byte one begins with), the longest such end first
        n = len(data)
        for found in starts.finditer(data, max(0, n - self.longest + 1)):
            if data[found.start():] in self._prefixes:
                return n - found.start()
        return 0


class StreamScrubber:
    """Scrubs a byte stream chunk by chunk; a secret split across chunks is still found."""

    def __init__(self, scrubber: SecretScrubber) -> None:
        self._scrubber = scrubber
        self._tail = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._scrubber.scrub_bytes(self._tail + chunk) if (self._tail or chunk) else b""
        keep = self._scrubber.held_back(data)
        if keep:
            data, self._tail = data[:-keep], data[-keep:]
        else:
            self._tail = b""
        return data

    def flush(self) -> bytes:
        tail, self._tail = self._tail, b""
        return self._scrubber.scrub_bytes(tail)


#: the process's known secrets: pools, the secret store and verification add to it
SECRETS = SecretScrubber()


def remember(secret: str | None) -> None:
    SECRETS.remember(secret)


def scrub(text: str) -> str:
    return SECRETS.scrub(text)


def scrub_bytes(data: bytes) -> bytes:
    return SECRETS.scrub_bytes(data)
