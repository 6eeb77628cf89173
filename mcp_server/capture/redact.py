"""Removal of secrets from shell commands before they enter the log.

The log is shared (team mode replicates it), so a ``Bash`` command such as
``export GITHUB_TOKEN=ghp_...`` must not be stored verbatim. Redaction works on
whitespace-separated words without ``re``, which the hook cannot afford to
import. It catches the common shapes (assignments and flags whose name looks
secret, ``Bearer`` tokens, well-known token prefixes, URL passwords); it is a
safety net, not a guarantee.
"""

from __future__ import annotations

__all__ = ["REDACTED", "redact_command"]

REDACTED = "[REDACTED]"

_SECRET_NAME_PARTS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "API_KEY", "APIKEY", "PRIVATE_KEY", "CREDENTIAL", "AUTH")
_TOKEN_PREFIXES = ("ghp_", "gho_", "ghs_", "ghu_", "github_pat_", "glpat-", "xoxb-", "xoxp-", "sk-", "sk_live_", "rk_live_", "AKIA", "ASIA", "AIza", "npm_")
_MIN_PREFIXED_TOKEN = 16


def _looks_secret_name(name: str) -> bool:
    upper = name.strip("-").upper().replace("-", "_")
    return any(part in upper for part in _SECRET_NAME_PARTS)


def _redact_word(word: str, previous: str) -> str:
    bare = word.strip("'\"")
    if previous.lower() in ("bearer", "token", "basic") or (previous.startswith("-") and _looks_secret_name(previous) and "=" not in previous):
        return REDACTED
    if "=" in word:
        name, _, value = word.partition("=")
        if value and _looks_secret_name(name):
            return f"{name}={REDACTED}"
    if len(bare) >= _MIN_PREFIXED_TOKEN and bare.startswith(_TOKEN_PREFIXES):
        return REDACTED
    if "://" in word and "@" in word:
        scheme, _, rest = word.partition("://")
        credentials, at, host = rest.partition("@")
        if at and ":" in credentials:
            user = credentials.split(":", 1)[0]
            return f"{scheme}://{user}:{REDACTED}@{host}"
    return word


def redact_command(command: str) -> str:
    """Return ``command`` with words that look like secrets replaced by ``[REDACTED]``."""
    words = command.split(" ")
    previous = ""
    for index, word in enumerate(words):
        if word:
            words[index] = _redact_word(word, previous)
            previous = word.strip("'\"")
    return " ".join(words)
