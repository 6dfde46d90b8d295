"""Docs that cannot drift: every server setting is documented with its flag and variable."""

import re
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


def _unserved_lambda_operations() -> set[str]:
    """Operations of botocore's Lambda model that no route of the server answers."""
    import asyncio

    from aiohttp.test_utils import make_mocked_request

    from lambdalet import service_model
    from lambdalet.server import create_app

    app = create_app(Settings())
    model = service_model.service_model("lambda")
    loop = asyncio.new_event_loop()
    unserved = set()
    try:
        for name in model.operation_names:
            http = model.operation_model(name).http
            path = re.sub(r"\{(\w+)\+?\}", "x1", http["requestUri"].split("?")[0])
            info = loop.run_until_complete(app.router.resolve(make_mocked_request(http["method"], path, app=app)))
            if info.http_exception is not None:
                unserved.add(name)
    finally:
        loop.close()
    return unserved


def test_deviations_list_exactly_the_operations_not_served():
    text = (DOCS / "deviations.md").read_text()
    section = text.split("## Operations not served", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`(\w+)`", section)) - {"UnknownOperationException"}
    assert listed == _unserved_lambda_operations()
