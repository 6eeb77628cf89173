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
    ("echo '-----BEGIN RSA PRIVATE KEY-----\nMIIEpAS3CRET\nQ0S3CRET==\n-----END RSA PRIVATE KEY-----' > id_rsa",
     "echo '-----BEGIN RSA PRIVATE KEY-----[REDACTED]-----END RSA PRIVATE KEY-----' > id_rsa"),
    ("printf -- '-----BEGIN PRIVATE KEY-----\\nS3CRET\\n-----END PRIVATE KEY-----\\n' > k.pem",
     "printf -- '-----BEGIN PRIVATE KEY-----[REDACTED]-----END PRIVATE KEY-----\\n' > k.pem"),
    ("cat > key <<EOF\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlS3CRET",
     "cat > key <<EOF\n-----BEGIN OPENSSH PRIVATE KEY-----[REDACTED]"),
    ("echo password: S3CRET", "echo password: [REDACTED]"),
    ("echo 'Password:S3CRET' | login", "echo 'Password:[REDACTED]' | login"),
    ('echo "db_password: S3CRET" >> config.yml', 'echo "db_password: [REDACTED]" >> config.yml'),
    ("echo password=S3CRET", "echo password=[REDACTED]"),
    ("openssl enc -aes-256-cbc -k S3CRET -in a -out b", "openssl enc -aes-256-cbc -k [REDACTED] -in a -out b"),
    ("openssl enc -aes-128-cbc -K 00S3CRET -iv 01 -in a", "openssl enc -aes-128-cbc -K [REDACTED] -iv 01 -in a"),
    ("openssl rsa -in k.pem -passin pass:S3CRET -out p.pem", "openssl rsa -in k.pem -passin pass:[REDACTED] -out p.pem"),
    ("openssl pkcs12 -export -passout 'pass:S3CRET' -in c", "openssl pkcs12 -export -passout 'pass:[REDACTED]' -in c"),
    ("openssl enc -d -pass pass:S3CRET -in a", "openssl enc -d -pass [REDACTED] -in a"),
]

HARMLESS = ["ls -la src", "python -m pytest -k 'pass'", "echo $PATH", "grep -p foo README.md", "sed -i 's/a/b/' x.py",
            "grep -rn 'password:' config/", 'grep -n "password:" settings.yml', "openssl x509 -in cert.pem -noout -text",
            "pytest -k test_password", "grep -rn -- '-----BEGIN CERTIFICATE-----' certs/"]


@pytest.mark.parametrize(("command", "expected"), LEAKY)
def test_secret_redacted(command: str, expected: str) -> None:
    redacted = redact_command(command)

    assert redacted == expected
    assert "S3CRET" not in redacted


@pytest.mark.parametrize("command", HARMLESS)
def test_harmless_command_kept(command: str) -> None:
    assert redact_command(command) == command
