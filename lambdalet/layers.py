"""The set of layers: an index over the store, and the rules of layer versions.

Reads are dict lookups in an index read again from the database (`refresh`) at the start of each
request that reads layers, so that what another node published, deleted or permitted is seen at
once (layers are never on an invoke's path: a function keeps what it needs of its layers). Writes
go to the database first (off the event loop) and then replace the cached entry, under one lock;
version numbers come from the database's counter. Versions are numbered 1, 2, ... per layer and never renumbered or
reused. A function keeps what it needs of each layer version it uses (`FunctionLayer`: ARN, size,
content hash), so deleting a layer version never breaks it: the content stays in the blob store.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable, MutableMapping

from lambdalet.errors import InvalidParameterValueException, ResourceNotFoundException
from lambdalet.model import (
    LAYER_VERSION_ARN_PATTERN,
    Arns,
    FunctionLayer,
    LayerVersion,
    parse_layer_version_arn,
)
from lambdalet.store.blobs import MAX_UNZIPPED_BYTES
from lambdalet.policies import apply_change
from lambdalet.store.layers import LayerStore

MAX_LAYERS_PER_FUNCTION = 5
REFRESHED = "lambdalet.layers_refreshed"  # the request's note that its layers were read
NOT_FOUND = "The resource you requested does not exist."


@dataclass
class Layer:
    name: str
    last_version: int = 0
    versions: dict[int, LayerVersion] = field(default_factory=dict)
    #: Layer version permissions by version: (statements, RevisionId).
    policies: dict[int, tuple[list[dict], str]] = field(default_factory=dict)

    def newest(self, runtime: str | None = None, architecture: str | None = None) -> LayerVersion | None:
        matching = [v for v in self.versions.values() if v.matches(runtime, architecture)]
        return max(matching, key=lambda v: v.version) if matching else None


class LayerRegistry:
    def __init__(self, store: LayerStore, arns: Arns) -> None:
        self._store = store
        self._arns = arns
        self._by_name: dict[str, Layer] = {}
        self._write_lock = asyncio.Lock()

    async def load(self) -> None:
        """Read every layer from the database (at start-up, and through `refresh`)."""
        stored = await asyncio.to_thread(self._store.load_all)
        self._by_name = {layer.name: Layer(layer.name, layer.last_version, dict(layer.versions), dict(layer.policies))
                         for layer in stored}

    async def refresh(self, request: MutableMapping[str, Any]) -> None:
        """`load`, once per request (`request`: its per-request state, where that is noted)."""
        if not request.get(REFRESHED):
            request[REFRESHED] = True
            async with self._write_lock:
                await self.load()

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def layer(self, name: str) -> Layer | None:
        return self._by_name.get(name)

    def total_code_size(self) -> int:
        """What the layer versions add to GetAccountSettings' TotalCodeSize (AWS counts their archives)."""
        return sum(version.code_size for layer in self._by_name.values() for version in layer.versions.values())

    def version(self, name: str, version: int, missing: str = NOT_FOUND) -> LayerVersion:
        check_version_number(version)
        layer = self._by_name.get(name)
        found = layer.versions.get(version) if layer is not None else None
        if found is None:
            raise ResourceNotFoundException(missing)
        return found

    async def publish(self, draft: LayerVersion) -> LayerVersion:
        """PublishLayerVersion: `draft` becomes the layer's next version (creating the layer)."""
        async with self._write_lock:
            layer = self._by_name.get(draft.name) or Layer(draft.name)
            published = await asyncio.to_thread(self._store.publish, draft)
            layer.versions[published.version] = published
            layer.last_version = published.version
            self._by_name[layer.name] = layer
            return published

    async def delete(self, name: str, version: int) -> None:
        """DeleteLayerVersion: idempotent, as on Lambda; the number is never given out again."""
        check_version_number(version)
        async with self._write_lock:
            layer = self._by_name.get(name)
            if layer is None or version not in layer.versions:
                return
            await asyncio.to_thread(self._store.delete_version, name, version)
            del layer.versions[version]
            layer.policies.pop(version, None)

    async def change_policy(self, name: str, version: int,
                            change: Callable[[list[dict], str | None], list[dict]]) -> tuple[list[dict], str]:
        """Apply `change(statements, revision)` to one layer version's policy under the write lock."""
        async with self._write_lock:
            self.version(name, version, missing=f"Layer version {self._arns.layer(name, version)} does not exist.")
            return await apply_change(self._by_name[name].policies, version, change,
                                      lambda updated, revision: self._store.set_policy(name, version, updated, revision))

    def resolve(self, arns: list[str]) -> tuple[FunctionLayer, ...]:
        """A function's `Layers` (layer version ARNs, in order), checked as Lambda checks them."""
        if len(arns) > MAX_LAYERS_PER_FUNCTION:
            raise InvalidParameterValueException(f"Cannot reference more than {MAX_LAYERS_PER_FUNCTION} layers.")
        resolved: list[FunctionLayer] = []
        seen: dict[str, str] = {}
        for arn in arns:
            ref = parse_layer_version_arn(arn)
            if ref is None:
                raise InvalidParameterValueException(
                    f"1 validation error detected: Value '[{', '.join(arns)}]' at 'layers' failed to satisfy "
                    "constraint: Member must satisfy constraint: [Member must have length less than or equal "
                    "to 140, Member must have length greater than or equal to 1, Member must satisfy regular "
                    f"expression pattern: {LAYER_VERSION_ARN_PATTERN}, Member must not be null]")
            if ref.region != self._arns.region:
                raise InvalidParameterValueException(
                    "Layers are not in the same region as the function. "
                    f"Layers are expected to be in region {self._arns.region}.")
            layer = self._by_name.get(ref.name) if ref.account == self._arns.account else None
            version = layer.versions.get(ref.version or 0) if layer is not None else None
            if version is None:
                raise InvalidParameterValueException(f"Layer version {arn} does not exist.")
            layer_arn = self._arns.layer(ref.name)
            if layer_arn in seen:
                raise InvalidParameterValueException(
                    "Two different versions of the same layer are not allowed to be referenced in the same "
                    f"function. {seen[layer_arn]} and {arn} are versions of the same layer.")
            seen[layer_arn] = arn
            resolved.append(version.as_function_layer(self._arns))
        return tuple(resolved)


def check_unzipped_size(code_unzipped: int, layers: tuple[FunctionLayer, ...]) -> None:
    """Lambda's 250 MB limit on a function's code and all its layers, unzipped."""
    total = code_unzipped + sum(layer.unzipped_size for layer in layers)
    if total > MAX_UNZIPPED_BYTES:
        raise InvalidParameterValueException(
            f"Function code combined with layers exceeds the maximum allowed size of {MAX_UNZIPPED_BYTES} bytes. "
            f"The actual size is {total} bytes.")


def check_version_number(version: int) -> None:
    if version < 1:
        raise InvalidParameterValueException("Layer Version Cannot be less than 1")
