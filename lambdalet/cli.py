"""The `lambdalet` command line. `lambdalet server` takes every Settings field as a flag; the other
commands (`lambdalet/commands.py`) are clients of the Lambda API."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, Callable

import click

from lambdalet import __version__
from lambdalet.commands import COMMANDS
from lambdalet.config import Settings
from lambdalet.images.command import push_image


def _settings_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """One --flag per Settings field, each also read from its LAMBDALET_<NAME> variable."""
    hints = typing.get_type_hints(Settings)
    for f in reversed(Settings.fields()):
        flag = "--" + f.name.replace("_", "-")
        multiple = bool(f.metadata.get("multiple"))
        kind = hints[f.name]
        if isinstance(f.default, Path):
            click_type: Any = click.Path(path_type=Path)
        elif multiple:
            click_type = str
        else:
            click_type = kind
        options: dict[str, Any] = {"is_flag": True} if kind is bool else {"type": click_type, "multiple": multiple}
        command = click.option(
            flag, f.name, default=f.default if not multiple else (), envvar=Settings.env_name(f.name),
            show_default=not multiple, show_envvar=True, help=f.metadata["help"], **options,
        )(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lambdalet")
def main() -> None:
    """Lambdalet: a self-hosted serverless platform that speaks AWS Lambda's API."""


for _command in COMMANDS:  # deploy, invoke, ls, mappings, rm, logs: clients of the Lambda API
    main.add_command(_command)
main.add_command(push_image)  # a client of OCI registries


@main.command()
@_settings_options
def server(**values: Any) -> None:
    """Serve the Lambda API and run functions (default http://127.0.0.1:9001)."""
    from lambdalet.server import run

    values["python_interpreter"] = tuple(values["python_interpreter"])
    values["node_binary"] = tuple(values["node_binary"])
    try:
        settings = Settings(**values)
        from lambdalet.runtimes.registry import RuntimeRegistry

        RuntimeRegistry(settings.python_interpreter, settings.node_binary)  # fail fast on malformed entries
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    run(settings)
