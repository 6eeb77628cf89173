"""Removal of secrets from shell commands before they enter the log.

The log is shared (team mode replicates it), so a ``Bash`` command such as
``export GITHUB_TOKEN="ghp_..."`` must not be stored verbatim. A handful of
regular expressions cover the common shapes: assignments whose name looks
secret (quoted or not), secret-looking flags (``--password x``, ``-pX`` for
MySQL clients, ``-u user:pass`` for curl), ``Authorization``/API-key headers,
``Bearer`` tokens, well-known token prefixes and passwords in URLs. It is a
safety net, not a guarantee.

``re`` costs the hook about 3 ms to import, so it is imported only when a
command is redacted, which happens for ``Bash`` calls alone.
"""

from __future__ import annotations

__all__ = ["REDACTED", "redact_command"]

REDACTED = "[REDACTED]"

_SECRET_NAME = r"[A-Za-z0-9_]*(?:TOKEN|SECRET|PASSWORD|PASSWD|PASS|PWD|PASSPHRASE|API_?KEY|PRIVATE_KEY|ACCESS_KEY|CREDENTIALS?|AUTH|_KEY)[A-Za-z0-9_]*"
_VALUE = r"(?:\"[^\"]*\"|'[^']*'|[^\s;&|]+)"

# (pattern, replacement) pairs, applied in order; group 1 is always kept.
_RULES: tuple[tuple[str, str], ...] = (
    # NAME=value and NAME = value, for names that look secret, with quoted values kept whole.
    (rf"(?i)\b({_SECRET_NAME}\s*=\s*){_VALUE}", rf"\1{REDACTED}"),
    # --password value, --token=value, --api-key value, ...
    (rf"(?i)(--?(?:password|passwd|pass|token|secret|api[-_]?key|auth(?:-token)?|client-secret)(?:=|\s+)){_VALUE}",
     rf"\1{REDACTED}"),
    # mysql -pSECRET, mariadb --password=... (the first form has no separator)
    (r"(\b(?:mysql|mysqldump|mariadb|mysqladmin)\b[^\n;&|]*?\s-p)(?!\s)\S+", rf"\1{REDACTED}"),
    # docker login -p SECRET
    (r"(\bdocker\s+login\b[^\n;&|]*?\s-p\s+)\S+", rf"\1{REDACTED}"),
    # curl -u user:password / --user user:password
    (r"((?:\s-u|\s--user)(?:=|\s+)[\"']?[^:\s\"']+:)[^\s\"']+", rf"\1{REDACTED}"),
    # Authorization: Bearer x, X-Api-Key: x, Private-Token: x (header values, quoted or not)
    (r"(?i)((?:authorization|proxy-authorization|x-api-key|api-key|x-auth-token|private-token)\s*:\s*"
     r"(?:bearer|basic|token)?\s*)[^\s\"']+", rf"\1{REDACTED}"),
    (r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]+", rf"\1{REDACTED}"),
    # Well-known token formats anywhere.
    (r"\b(?:ghp_|gho_|ghs_|ghu_|github_pat_|glpat-|xox[abposr]-|sk-|sk_live_|sk_test_|rk_live_|npm_|AKIA|ASIA|AIza)"
     r"[A-Za-z0-9_\-]{12,}", REDACTED),
    # scheme://user:password@host
    (r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/\s@]+:)[^@\s]+(@)", rf"\1{REDACTED}\2"),
)

_compiled: list[tuple[object, str]] = []


def redact_command(command: str) -> str:
    """Return ``command`` with values that look like secrets replaced by ``[REDACTED]``."""
    import re

    if not _compiled:
        _compiled.extend((re.compile(pattern), replacement) for pattern, replacement in _RULES)
    for pattern, replacement in _compiled:
        command = pattern.sub(replacement, command)  # type: ignore[attr-defined]
    return command
