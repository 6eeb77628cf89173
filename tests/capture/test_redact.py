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
    ('echo \'{"password": "S3CRET"}\'', 'echo \'{"password": "[REDACTED]"}\''),
    ('curl -d \'{"api_key":"S3CRET","token": "S3CRET"}\' x', 'curl -d \'{"api_key":"[REDACTED]","token": "[REDACTED]"}\' x'),
    ("python -c \"print({'secret': 'S3CRET'})\"", "python -c \"print({'secret': '[REDACTED]'})\""),
    ("sshpass -p S3CRET ssh host", "sshpass -p [REDACTED] ssh host"),
    ("sshpass -pS3CRET ssh host", "sshpass -p[REDACTED] ssh host"),
    ("echo S3CRET | sudo -S apt update", "echo [REDACTED] | sudo -S apt update"),
    ('echo "S3CRET" | sudo -kS ls', "echo [REDACTED] | sudo -kS ls"),
    ("aws configure set aws_secret_access_key S3CRET", "aws configure set aws_secret_access_key [REDACTED]"),
    ("npm config set //host/:_authToken S3CRET", "npm config set //host/:_authToken [REDACTED]"),
    ("npm config set //host/:_authToken=S3CRET", "npm config set //host/:_authToken=[REDACTED]"),
    ("zip -P S3CRET out.zip a", "zip -P [REDACTED] out.zip a"),
    ("7z a -pS3CRET out.7z a", "7z a -p[REDACTED] out.7z a"),
    ("htpasswd -b file user S3CRET", "htpasswd -b file user [REDACTED]"),
    ("htpasswd -cb .htpasswd user S3CRET && ls", "htpasswd -cb .htpasswd user [REDACTED] && ls"),
    ("htpasswd -nbB user S3CRET", "htpasswd -nbB user [REDACTED]"),
    ('curl -H "X-Session: eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.S3CRET_sig" x', 'curl -H "X-Session: [REDACTED]" x'),
    ("cat > key <<EOF\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlS3CRET=\nEOF\nchmod 600 key",
     "cat > key <<EOF\n-----BEGIN OPENSSH PRIVATE KEY-----[REDACTED]\nEOF\nchmod 600 key"),
    ("printf '-----BEGIN EC PRIVATE KEY-----\\nMHcS3CRET' > k; ls -la", "printf '-----BEGIN EC PRIVATE KEY-----[REDACTED]' > k; ls -la"),
    ("echo '-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,AB12\n\nMIIS3CRET\n"
     "-----END RSA PRIVATE KEY-----' > k",
     "echo '-----BEGIN RSA PRIVATE KEY-----[REDACTED]-----END RSA PRIVATE KEY-----' > k"),
]

HARMLESS = ["ls -la src", "python -m pytest -k 'pass'", "echo $PATH", "grep -p foo README.md", "sed -i 's/a/b/' x.py",
            "grep -rn 'password:' config/", 'grep -n "password:" settings.yml', "openssl x509 -in cert.pem -noout -text",
            "pytest -k test_password", "grep -rn -- '-----BEGIN CERTIFICATE-----' certs/",
            "grep '\"password\":' settings.json", "echo '{\"token\": \"\"}'", "echo hi | sudo tee /etc/motd",
            "echo hi | sudo -s", "aws configure set region eu-west-1", "npm config set registry https://registry.test",
            "zip -r out.zip src", "unzip -l out.zip", "htpasswd -D .htpasswd user", "sshpass -f pw.txt ssh host",
            "grep eyJ access.log", "echo eyJhbGciOiJIUzI1NiJ9"]


@pytest.mark.parametrize(("command", "expected"), LEAKY)
def test_secret_redacted(command: str, expected: str) -> None:
    redacted = redact_command(command)

    assert redacted == expected
    assert "S3CRET" not in redacted


@pytest.mark.parametrize("command", HARMLESS)
def test_harmless_command_kept(command: str) -> None:
    assert redact_command(command) == command


@pytest.mark.parametrize("command", [
    "-----BEGIN RSA PRIVATE KEY-----\n" + "A" * 200_000,
    "'password'" * 20_000,
    "echo " + "a " * 100_000 + "| sudo",
    "htpasswd -b " + "a " * 100_000,
])
def test_long_command_redacted(command: str) -> None:
    # Each input is long enough that a pattern which backtracks on it would hang the test.
    assert isinstance(redact_command(command), str)
