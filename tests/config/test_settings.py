"""Project settings: where they are read from, their precedence, and messages that name the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import Project
from mcp_server.cli import main
from mcp_server.config import load_config, parse_config
from mcp_server.consumers import DEFAULT_HANDLER_TIMEOUT
from mcp_server.errors import ConfigurationError


def _write_local(root: Path, text: str) -> None:
    (root / ".eventsync").mkdir(exist_ok=True)
    (root / ".eventsync" / "config.toml").write_text(text, encoding="utf-8")


def _problems(data: dict) -> str:
    with pytest.raises(ConfigurationError) as raised:
        parse_config(data)
    return str(raised.value)


def test_defaults_without_files(tmp_path: Path) -> None:
    loaded = load_config(str(tmp_path))

    assert loaded.sources == ()
    assert loaded.settings.strict_types is False
    assert loaded.settings.webhooks == ()
    assert loaded.settings.modules.entry_points is True


def test_local_file_overrides_pyproject_by_key(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.eventsync]\nstrict_types = true\n\n'
        '[tool.eventsync.modules]\ndisable = ["context"]\n',
        encoding="utf-8",
    )
    _write_local(tmp_path, '[modules]\nload = ["json:dumps"]\n')

    loaded = load_config(str(tmp_path))

    assert loaded.settings.strict_types is True
    assert loaded.settings.modules.load == ("json:dumps",)
    assert loaded.settings.modules.disable == ()
    assert loaded.origin["strict_types"].endswith("pyproject.toml")
    assert loaded.origin["modules"].endswith("config.toml")


def test_invalid_url_names_key_value_fix() -> None:
    message = _problems({"webhooks": [{"url": "htp://x", "events": ["task.>"]}]})

    assert "webhooks[0].url: invalid URL 'htp://x'; use http:// or https://" in message


def test_unknown_key_lists_known_keys() -> None:
    message = _problems({"webhooks": [{"url": "https://h/x", "events": [">"], "retries": 3}]})

    assert "webhooks[0].retries: unknown key" in message
    assert "max_attempts" in message


def test_secret_value_never_echoed() -> None:
    message = _problems({"webhooks": [{"url": "https://h/x", "events": [">"], "secret_env": "s3cr3t value!"}]})

    assert "webhooks[0].secret_env" in message
    assert "s3cr3t" not in message


def test_url_with_credentials_rejected() -> None:
    message = _problems({"webhooks": [{"url": "https://user:pw@h/x", "events": [">"]}]})

    assert "carries credentials" in message


def test_retention_rules_validated_and_exposed(tmp_path: Path) -> None:
    _write_local(tmp_path, '[[retention]]\ntype = "file.saved"\nmax_age_days = 30\nkeep_latest_per = "path"\n')

    rule = load_config(str(tmp_path)).settings.retention[0]
    no_limit = _problems({"retention": [{"type": "file.saved"}]})
    bad_pattern = _problems({"retention": [{"type": "file.>.x", "max_count": 3}]})

    assert (rule.type, rule.max_age_days, rule.keep_latest_per) == ("file.saved", 30, "path")
    assert "retention[0]: the rule sets no limit; add max_age_days, max_count or both" in no_limit
    assert "retention[0].type: invalid type pattern 'file.>.x'" in bad_pattern


def test_wrong_type_names_value() -> None:
    message = _problems({"strict_types": "yes", "webhooks": [{"url": "https://h", "events": [">"], "max_attempts": 0}]})

    assert "strict_types: invalid value 'yes'" in message
    assert "webhooks[0].max_attempts: invalid value 0" in message


def test_invalid_toml_names_file(tmp_path: Path) -> None:
    _write_local(tmp_path, "strict_types = \n")

    with pytest.raises(ConfigurationError) as raised:
        load_config(str(tmp_path))

    assert "config.toml: invalid TOML" in str(raised.value)


def test_error_names_source_file(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.eventsync]\nstrict_typez = true\n', encoding="utf-8")

    with pytest.raises(ConfigurationError) as raised:
        load_config(str(tmp_path))

    assert f"{tmp_path / 'pyproject.toml'}: strict_typez: unknown key" in str(raised.value)


def test_runtime_rejects_bad_settings(project: Project) -> None:
    _write_local(project.root, '[[webhooks]]\nurl = "ftp://x"\nevents = [">"]\n')

    with pytest.raises(ConfigurationError) as raised:
        project.runtime()

    assert "webhooks[0].url: invalid URL 'ftp://x'" in str(raised.value)


def test_config_command_prints_settings(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    _write_local(project.root, "strict_types = true\n")

    status = main(["config", "--json", "--project", str(project.root)])
    output = capsys.readouterr().out

    assert status == 0
    assert '"strict_types": true' in output
    assert "config.toml" in output


def test_config_command_reports_errors(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    _write_local(project.root, '[modules]\ndisable = ["Context"]\n')

    status = main(["config", "--project", str(project.root)])

    assert status == 1
    assert "modules.disable: invalid module name 'Context'" in capsys.readouterr().err


def test_consumer_timeout_reaches_runner(project: Project) -> None:
    _write_local(project.root, "[consumers]\ntimeout_seconds = 4.5\n")

    runtime = project.runtime()
    try:
        assert runtime.runner.handler_timeout == 4.5
    finally:
        runtime.close()


def test_consumer_timeout_default(tmp_path: Path) -> None:
    assert load_config(str(tmp_path)).settings.consumers.timeout_seconds == DEFAULT_HANDLER_TIMEOUT


def test_negative_consumer_timeout_rejected() -> None:
    message = _problems({"consumers": {"timeout_seconds": -1}})

    assert "consumers.timeout_seconds: invalid value -1: Input should be greater than or equal to 0" in message
