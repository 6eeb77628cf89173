"""Secrets in recorded shell commands are replaced before the event is stored."""

from __future__ import annotations

import pytest

from mcp_server.capture.redact import redact_command

LEAKY = [
    ('export API_TOKEN="quoted value S3CRET with spaces"', "export API_TOKEN=[REDACTED]"),
    ("export TOKEN='abc S3CRET'", "export TOKEN=[REDACTED]"),
    ("export DB_PASS=S3CRET", "export DB_PASS=[REDACTED]"),
    ("export API_TOKEN=  S3CRET", "export API_TOKEN=  [REDACTED]"),
    ("STRIPE_KEY=S3CRET ./run", "STRIPE_KEY=[REDACTED] ./run"),
    ("curl -u admin:S3CRET https://example.test", "curl -u admin:[REDACTED] https://example.test"),
    ("mysql -uroot -pS3CRET shop", "mysql -uroot -p[REDACTED] shop"),
    ("docker login -p S3CRET registry.test", "docker login -p [REDACTED] registry.test"),
    ('curl -H "X-Api-Key: S3CRET" x', 'curl -H "X-Api-Key: [REDACTED]" x'),
    ("curl -H 'Authorization:Bearer S3CRET' x", "curl -H 'Authorization:Bearer [REDACTED]' x"),
    ("tool --password S3CRET --token=S3CRET", "tool --password [REDACTED] --token=[REDACTED]"),
    ("git clone https://user:S3CRET@git.test/x", "git clone https://user:[REDACTED]@git.test/x"),
    ("echo ghp_" + "a1" * 18, "echo [REDACTED]"),
]

HARMLESS = ["ls -la src", "python -m pytest -k 'pass'", "echo $PATH", "grep -p foo README.md", "sed -i 's/a/b/' x.py"]


@pytest.mark.parametrize(("command", "expected"), LEAKY)
def test_secret_redacted(command: str, expected: str) -> None:
    redacted = redact_command(command)

    assert redacted == expected
    assert "S3CRET" not in redacted


@pytest.mark.parametrize("command", HARMLESS)
def test_harmless_command_kept(command: str) -> None:
    assert redact_command(command) == command
