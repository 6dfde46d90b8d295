"""Docs that cannot drift: every server setting is documented with its flag and variable."""

from pathlib import Path

from click.testing import CliRunner

from lambdalet.cli import main, server
from lambdalet.config import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_setting_is_in_the_configuration_doc():
    text = (DOCS / "configuration.md").read_text()
    for field in Settings.fields():
        assert f"`--{field.name.replace('_', '-')}`" in text, field.name
        assert f"`{Settings.env_name(field.name)}`" in text, field.name


def test_every_setting_is_a_server_flag():
    help_text = CliRunner().invoke(main, ["server", "--help"], terminal_width=200).output
    for field in Settings.fields():
        assert f"--{field.name.replace('_', '-')}" in help_text, field.name


def test_settings_are_read_from_lambdalet_variables(monkeypatch):
    monkeypatch.setenv("LAMBDALET_PORT", "9100")
    monkeypatch.setenv("LAMBDALET_KEEP_ALIVE", "1.5")
    monkeypatch.setenv("LAMBDALET_PYTHON_INTERPRETER", "python3.12=/a python3.11=/b")
    params = server.make_context("server", []).params
    assert params["port"] == 9100 and params["keep_alive"] == 1.5
    assert params["python_interpreter"] == ("python3.12=/a", "python3.11=/b")
