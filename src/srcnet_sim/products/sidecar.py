"""The `<file>.meta` sidecar the SRCNet ingestor reads: {namespace, name, lifetime, dataset_name?, meta}."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import jsonschema

SCHEMA_FILE = "sidecar.schema.json"


@cache
def schema() -> dict:
    """The JSON Schema of a sidecar (shipped with the package)."""
    return json.loads(resources.files("srcnet_sim.products").joinpath(SCHEMA_FILE).read_text())


def build(namespace: str, name: str, lifetime_s: int, meta: dict, dataset_name: str | None = None) -> dict:
    """A sidecar, validated against the schema (raises jsonschema.ValidationError)."""
    sidecar = {"namespace": namespace, "name": name, "lifetime": int(lifetime_s), "meta": meta}
    if dataset_name:
        sidecar["dataset_name"] = dataset_name
    validate(sidecar)
    return sidecar


@cache
def validator() -> jsonschema.Draft202012Validator:
    """The validator of the schema, which is checked once (as jsonschema.validate would on every call)."""
    jsonschema.Draft202012Validator.check_schema(schema())
    return jsonschema.Draft202012Validator(schema())


def validate(sidecar: dict) -> None:
    """Raise jsonschema.ValidationError (the most relevant error, as jsonschema.validate) when `sidecar` does not
    follow the schema."""
    error = jsonschema.exceptions.best_match(validator().iter_errors(sidecar))
    if error is not None:
        raise error


def problem(sidecar: object) -> str | None:
    """A one-line description of what is wrong with a sidecar, or None when it is valid."""
    try:
        validate(sidecar)  # type: ignore[arg-type]
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        return f"{where}: {exc.message}"
    return None
