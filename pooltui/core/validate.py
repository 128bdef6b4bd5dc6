"""Input checked at the edge: finite numbers, strict URLs, label-shaped names, plausible secrets.

Every function returns the clean value or raises ``ValueError`` with one line that says what is wrong
(never the secret itself). The config reader, the CLI, the monitor and the importers all use these, so a
value is judged the same wherever it comes in.
"""

from __future__ import annotations

import math
import re
from urllib.parse import urlsplit

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x21-\x7e]")
MAX_SECRET_BYTES = 4096


def finite(name: str, value: object, minimum: float | None = 0.0, *, strict: bool = False,
           maximum: float | None = None) -> float:
    """A real, finite number (not NaN, not infinite, not a bool) of at least ``minimum`` and at most ``maximum``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a finite number, not {short(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        raise ValueError(f"{name} must be a finite number, not {short(value)}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, not {short(value)}")
    if minimum is not None and (number <= minimum if strict else number < minimum):
        raise ValueError(f"{name} must be a number {'>' if strict else '>='} {minimum:g}, not {short(value)}")
    if maximum is not None and number > maximum:
        raise ValueError(f"{name} must be at most {maximum:g}, not {short(value)}")
    return number


def whole(name: str, value: object, minimum: int = 0, maximum: int | None = None) -> int:
    """A whole number (not a bool, not a float) of at least ``minimum`` and at most ``maximum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, not {short(value)}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum:,}, not {short(value)}")
    return value


def short(value: object) -> str:
    """``repr(value)`` cut to 40 characters (a number of a million digits stays one short line)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"a number of {len(str(abs(value)))} digits"
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def flag(name: str, value: object) -> bool:
    """A true/false value (not 0/1, not "yes")."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, not {value!r}")
    return value


def label(value: object, what: str = "key label") -> str:
    """A label-shaped name: 1-64 letters, digits, '-', '_', '.', '@' or '+', starting with a letter or digit."""
    text = value.strip() if isinstance(value, str) else ""
    if not _LABEL.match(text):
        raise ValueError(f"bad {what} {value!r}: use 1-64 letters, digits, '-', '_', '.', '@' or '+'")
    return text


def provider_name(value: object) -> str:
    return label(value, "provider name")


_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}")


def model_name(value: object, what: str = "model") -> str:
    """A model id as providers spell them (``claude-sonnet-4-5``, ``anthropic/claude-sonnet-4.5``,
    ``accounts/fireworks/models/x``): 1-200 ASCII letters, digits and ``. _ : / @ + -``."""
    if not isinstance(value, str) or not _MODEL.fullmatch(value.strip()):
        raise ValueError(f"bad {what} {value!r}: use 1-200 letters, digits and . _ : / @ + -")
    return value.strip()


def env_name(value: object) -> str:
    """An environment variable name: ``[A-Za-z_][A-Za-z0-9_]*``."""
    if not isinstance(value, str) or not _ENV_NAME.match(value):
        raise ValueError(f"bad environment variable name {value!r}: use letters, digits and '_', not starting "
                         "with a digit")
    return value


def secret(value: object) -> str:
    """An API key: non-empty, at most 4 KiB, printable ASCII with no whitespace or control character inside."""
    if not isinstance(value, str):
        raise ValueError("the key must be text")
    text = value.strip()
    if not text:
        raise ValueError("empty key: nothing stored")
    if len(text.encode()) > MAX_SECRET_BYTES:
        raise ValueError(f"the key is longer than {MAX_SECRET_BYTES} bytes: that is not an API key")
    if _SPACE_OR_CONTROL.search(text):
        raise ValueError("the key has whitespace or a control character inside: paste the key alone")
    odd = _NOT_PRINTABLE_ASCII.search(text)
    if odd:  # a pasted '…' or smart quote: no provider would accept it, and HTTP headers cannot carry it
        raise ValueError(f"the key is not printable ASCII (character {odd.start() + 1} of {len(text)} is "
                         f"U+{ord(odd.group()):04X}): copy the key again from the provider's console")
    return text


def origin(url: str) -> str:
    """A URL as it may be shown when its path is a secret (a webhook's often is): scheme and host only."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or "?"
    return f"{parts.scheme or '?'}://{host}{'' if port is None else f':{port}'}/…"


def base_url(value: object, *, secret_path: bool = False) -> str:
    """A strict http(s) URL with a host: no whitespace, CR/LF, user-info, bad port, query or fragment.
    ``secret_path``: the URL's path is a secret (a webhook): errors show only its scheme and host."""
    if not isinstance(value, str):
        raise ValueError(f"base URL must be text, not {short(value)}")
    url = value.strip()
    shown = origin(url) if secret_path else url
    if _SPACE_OR_CONTROL.search(url):
        raise ValueError(f"base URL {shown!r} has whitespace or a control character in it")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base URL must be http(s)://host..., not {shown!r}")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError(f"base URL {parts.scheme}://{parts.hostname}... must not carry user-info (a key in the "
                         "URL would be logged): store the key with `pooltui auth add`")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"base URL {shown!r} has a bad port") from None
    if port == 0:
        raise ValueError(f"base URL {shown!r} has a bad port")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ValueError(f"base URL {shown!r} must not have a query or fragment")
    return url.rstrip("/")
