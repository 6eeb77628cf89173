"""Removal of secrets from shell commands before they enter the log.

The log is shared (team mode replicates it), so a ``Bash`` command such as
``export GITHUB_TOKEN="ghp_..."`` must not be stored verbatim. A handful of
regular expressions cover the common shapes: assignments whose name looks
secret (quoted or not), secret-looking flags (``--password x``, ``-pX`` for
MySQL clients, ``-u user:pass`` for curl), ``Authorization``/API-key headers,
``Bearer`` tokens, well-known token prefixes, passwords in URLs, PEM private
key blocks, ``password: value`` and OpenSSL's ``-k`` and ``pass:`` arguments.
It is a safety net, not a guarantee.

``re`` costs the hook about 3 ms to import, so it is imported only when a
command is redacted, which happens for ``Bash`` calls alone.
"""

from __future__ import annotations

__all__ = ["REDACTED", "redact_command"]

REDACTED = "[REDACTED]"

_SECRET_NAME = r"[A-Za-z0-9_]*(?:TOKEN|SECRET|PASSWORD|PASSWD|PASS|PWD|PASSPHRASE|API_?KEY|PRIVATE_KEY|ACCESS_KEY|CREDENTIALS?|AUTH|_KEY)[A-Za-z0-9_]*"
_VALUE = r"(?:\"[^\"]*\"|'[^']*'|[^\s;&|]+)"

# (pattern, replacement, triggers): a rule runs only on text whose lower-case form contains one
# of its triggers, or always when it has none. Compiling one pattern took about 0.15 ms in a hook
# process (Python 3.11, 2-vCPU development machine), so rules for rare commands are compiled only
# when a command needs them. Group 1 is always kept.
_RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # PEM private key blocks (RSA, EC, OPENSSH, ENCRYPTED, PGP ...): the body up to the END line,
    # or to the end of the text when the command was cut before it. First, so no later rule
    # rewrites part of the body.
    (r"(?s)(-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----).*?(-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
     rf"\1{REDACTED}\2", ("private key",)),
    # NAME=value and NAME = value, for names that look secret, with quoted values kept whole.
    (rf"(?i)\b({_SECRET_NAME}\s*=\s*){_VALUE}", rf"\1{REDACTED}", ()),
    # --password value, --token=value, --api-key value, ...
    (rf"(?i)(--?(?:password|passwd|pass|token|secret|api[-_]?key|auth(?:-token)?|client-secret)(?:=|\s+)){_VALUE}",
     rf"\1{REDACTED}", ()),
    # password: value and secret: value, as in YAML, prompts and echo. A quoted value counts only
    # when the quotes contain text, so that grep 'password:' keeps its pattern.
    (r"(?i)\b([A-Za-z0-9_-]*(?:password|passwd|passphrase|secret)\s*:\s*)(?!\[REDACTED\])"
     r"(?:\"[^\"\s]+\"|'[^'\s]+'|[^\s;&|\"']+)", rf"\1{REDACTED}", ("pass", "secret")),
    # openssl enc -k PASSWORD and -K HEXKEY
    (r"(\bopenssl\b[^\n;&|]*?\s-[kK]\s+)\S+", rf"\1{REDACTED}", ("openssl",)),
    # openssl -passin pass:PASSWORD, -passout pass:PASSWORD (env:, file: and fd: name no secret)
    (r"(\bpass:)[^\s;&|\"']+", rf"\1{REDACTED}", ("pass:",)),
    # mysql -pSECRET, mariadb --password=... (the first form has no separator)
    (r"(\b(?:mysql|mysqldump|mariadb|mysqladmin)\b[^\n;&|]*?\s-p)(?!\s)\S+", rf"\1{REDACTED}", ()),
    # docker login -p SECRET
    (r"(\bdocker\s+login\b[^\n;&|]*?\s-p\s+)\S+", rf"\1{REDACTED}", ()),
    # curl -u user:password / --user user:password
    (r"((?:\s-u|\s--user)(?:=|\s+)[\"']?[^:\s\"']+:)[^\s\"']+", rf"\1{REDACTED}", ()),
    # Authorization: Bearer x, X-Api-Key: x, Private-Token: x (header values, quoted or not)
    (r"(?i)((?:authorization|proxy-authorization|x-api-key|api-key|x-auth-token|private-token)\s*:\s*"
     r"(?:bearer|basic|token)?\s*)[^\s\"']+", rf"\1{REDACTED}", ()),
    (r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]+", rf"\1{REDACTED}", ()),
    # Well-known token formats anywhere.
    (r"\b(?:ghp_|gho_|ghs_|ghu_|github_pat_|glpat-|xox[abposr]-|sk-|sk_live_|sk_test_|rk_live_|npm_|AKIA|ASIA|AIza)"
     r"[A-Za-z0-9_\-]{12,}", REDACTED, ()),
    # scheme://user:password@host
    (r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/\s@]+:)[^@\s]+(@)", rf"\1{REDACTED}\2", ()),
)

_compiled: dict[int, object] = {}


def redact_command(command: str) -> str:
    """Return ``command`` with values that look like secrets replaced by ``[REDACTED]``."""
    import re

    lowered = command.lower()
    for index, (pattern, replacement, triggers) in enumerate(_RULES):
        if triggers and not any(trigger in lowered for trigger in triggers):
            continue
        compiled = _compiled.get(index)
        if compiled is None:
            compiled = _compiled[index] = re.compile(pattern)
        command = compiled.sub(replacement, command)  # type: ignore[attr-defined]
    return command
