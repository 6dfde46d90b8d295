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


for _command in COMMANDS:  # deploy, invoke, ls, mappings, nodes, rm, logs: clients of the server
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


@main.command("sign-code")
@click.argument("zip_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--profile-version-arn", required=True,
              help="The signing profile version ARN the server knows the key by (--signing-profiles).")
@click.option("--key", "key_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The profile's private key: an unencrypted Ed25519 or ECDSA PEM.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the signed zip (default: replace ZIP_PATH).")
def sign_code(zip_path: Path, profile_version_arn: str, key_path: Path, output: Path | None) -> None:
    """Sign a code package for functions with a code signing config (docs/code-signing.md)."""
    from lambdalet.code_signing import sign

    try:
        signed = sign(zip_path.read_bytes(), profile_version_arn, key_path.read_bytes())
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    (output or zip_path).write_bytes(signed)
    click.echo(f"signed {output or zip_path} with {profile_version_arn}")
