"""Removal of secrets from shell commands before they enter the log.

The log is shared (team mode replicates it), so a ``Bash`` command such as
``export GITHUB_TOKEN="ghp_..."`` must not be stored verbatim. A handful of
regular expressions cover the common shapes: assignments whose name looks
secret (quoted or not), secret-looking flags (``--password x``, ``-pX`` for
MySQL clients, ``-u user:pass`` for curl), ``Authorization``/API-key headers,
``Bearer`` tokens, well-known token prefixes, passwords in URLs, PEM private
key blocks, ``password: value`` and JSON's ``"password": "value"``, JSON Web
Tokens, OpenSSL's ``-k`` and ``pass:`` arguments, and the password arguments of
sshpass, ``sudo -S``, ``aws configure set``, ``npm config set``, zip, 7z and
htpasswd. It is a safety net, not a guarantee.

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
    # PEM private key blocks (RSA, EC, OPENSSH, ENCRYPTED, PGP ...): the body up to the END line.
    # Without an END line (a command cut short, a heredoc), the body ends at the first word that
    # is neither an armor header nor a base64 run of at least 4 characters (PEM lines are
    # multiples of 4). So a quote, a separator or a short heredoc marker such as EOF stops it.
    # First, so no later rule rewrites part of the body.
    # NOTE: a command word of 4 or more base64 characters right after a key with no END line
    # and no marker (a bare newline, then `chmod 600 key`) is redacted with the key.
    (r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)"
     r"(?:(?:\s|\\[nr])*(?:[A-Za-z][A-Za-z-]*:[ \t]*[^\s'\"`\\;&|]+|[A-Za-z0-9+/=]{4,}))*"
     r"(?:(?:\s|\\[nr])*(-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----))?",
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
    # "password": "value" and 'api_key': 'value', as in JSON and Python literals. An empty value stays.
    # The value must be quoted like the key, so that grep '"password":' file keeps its pattern.
    (r"(?i)(([\"'])[A-Za-z0-9_.-]*(?:password|passwd|passphrase|secret|token|api[-_]?key)[A-Za-z0-9_.-]*\2"
     r"\s*:\s*\2)(?:(?<=\")[^\"]+|(?<=')[^']+)", rf"\1{REDACTED}", ("pass", "secret", "token", "key")),
    # sshpass -p SECRET and -pSECRET
    (r"(\bsshpass\b[^\n;&|]*?\s-p\s*)[^\s;&|]+", rf"\1{REDACTED}", ("sshpass",)),
    # echo SECRET | sudo -S: sudo reads the password from the pipe, so the echoed words are the secret.
    (r"(\becho\s+)[^;&|\n]+?(?=\s*\|\s*sudo\s+(?:-[A-Za-z]+\s+)*-[A-Za-z]*S)", rf"\1{REDACTED}", ("sudo",)),
    # aws configure set aws_secret_access_key SECRET (and other secret-looking settings)
    (r"(?i)(\baws\s+configure\s+set\s+[\w.-]*(?:secret|token|password)[\w.-]*\s+)" + _VALUE,
     rf"\1{REDACTED}", ("configure",)),
    # npm config set //registry/:_authToken SECRET, and the key=value form, for npm, yarn and pnpm
    (r"(?i)(\b(?:npm|yarn|pnpm)\s+config\s+set\s+[^\s=]*(?:_auth|token|password)[^\s=]*(?:\s+|=))" + _VALUE,
     rf"\1{REDACTED}", ("config",)),
    # zip -P SECRET, unzip -P SECRET and 7z -pSECRET (the --password rule above covers the long form)
    (r"(\b(?:zip|unzip|zipcloak)\b[^\n;&|]*?\s-P\s+)[^\s;&|]+", rf"\1{REDACTED}", ("zip",)),
    (r"(\b7za?\b[^\n;&|]*?\s-p)(?!\s)[^\s;&|]+", rf"\1{REDACTED}", ("7z",)),
    # htpasswd -b FILE USER SECRET and htpasswd -nb USER SECRET: batch mode takes the password as
    # the last argument.
    (r"(\bhtpasswd\s+(?=(?:-\S+\s+)*-[A-Za-z]*b)(?:[^\s;&|<>]+\s+)+?)[^\s;&|<>]+(?=\s*(?:[;&|<>\n]|$))",
     rf"\1{REDACTED}", ("htpasswd",)),
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
    # JSON Web Tokens: a base64url JSON header ("eyJ" is the encoding of '{"'), a payload and a signature.
    (r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*", REDACTED, ("eyj",)),
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
