"""`lambdalet push-image`: build a container image from folders and push it to a registry, no Docker needed."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from lambdalet.commands import key_values
from lambdalet.images import build, reference
from lambdalet.images.registry import Credentials, RegistryError, RegistrySession, default_docker_config, new_pool


def _layer_argument(value: str) -> tuple[Path, str]:
    source, _, at = value.partition(":")
    path = Path(source)
    if not path.is_dir():
        raise click.BadParameter(f"{source} is not a directory", param_hint="FOLDER[:PATH]")
    if at and not at.startswith("/"):
        raise click.BadParameter(f"{at} must be an absolute path in the image", param_hint="FOLDER[:PATH]")
    return path, at or "/"


@click.command("push-image")
@click.argument("uri")
@click.argument("folders", nargs=-1, required=True, metavar="FOLDER[:PATH]...")
@click.option("--entrypoint", help="ENTRYPOINT, as a shell would split it (e.g. '/var/task/bootstrap').")
@click.option("--cmd", "command", help="CMD, as a shell would split it (e.g. 'app.handler').")
@click.option("--env", multiple=True, metavar="KEY=VALUE", help="An ENV entry of the image (repeatable).")
@click.option("--workdir", default="", help="WorkingDir of the image.")
@click.option("--registry-config", type=click.Path(path_type=Path), envvar="LAMBDALET_REGISTRY_CONFIG",
              help="Registry logins (a Docker config.json; default $DOCKER_CONFIG/config.json or ~/.docker/config.json).")
@click.option("--insecure", is_flag=True, help="Plain HTTP to this registry (always so for loopback registries).")
def push_image(uri: str, folders: tuple[str, ...], entrypoint: str | None, command: str | None, env: tuple[str, ...],
               workdir: str, registry_config: Path | None, insecure: bool) -> None:
    """Build an image from FOLDERs (each one layer, at PATH in the image, default /) and push it as URI.

    For example, a custom runtime from a folder holding a static binary and its `bootstrap`:

        lambdalet push-image 127.0.0.1:5000/hello:v1 ./hello:/var/task --entrypoint /var/task/bootstrap

    Prints the pushed manifest's digest; use URI (or URI@digest) as the function's ImageUri.
    """
    try:
        image = reference.parse(uri)
    except reference.BadReference as exc:
        raise click.BadParameter(str(exc), param_hint="URI") from None
    if image.digest:
        raise click.BadParameter("push to a tag, not a digest", param_hint="URI")
    spec = build.ImageSpec(entrypoint=shlex.split(entrypoint or ""), command=shlex.split(command or ""),
                           env=key_values(env), working_dir=workdir)
    layers = []
    for value in folders:
        folder, at = _layer_argument(value)
        click.echo(f"Packing {folder} at {at}...", err=True)
        layers.append(build.folder_layer(folder, at))
    credentials = Credentials.from_docker_config(registry_config or default_docker_config())
    session = RegistrySession(image, credentials.for_registry(image, "us-east-1"), insecure=insecure, http=new_pool(),
                              scope="pull,push")
    size = sum(len(layer.compressed) for layer in layers)
    click.echo(f"Pushing {len(layers)} layer(s), {size / 1024 / 1024:.1f} MB, to {image.registry}...", err=True)
    try:
        digest = build.push(session, image, layers, spec)
    except RegistryError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"Pushed {uri}", err=True)
    click.echo(digest)
