"""Schemathesis hooks for tests/test_fuzz.py (loaded by path through SCHEMATHESIS_HOOKS).

Generated ids name nothing, so every route with an id would only ever answer 404. These
hooks swap, some of the time, a generated id (in the path, the query or the body) for one
of the test tenant's real ones, given in CALENDENCE_FUZZ_IDS as JSON:

    {"paths": {"/api/v1/locations/{id}": {"id": ["..."]}}, "fields": {"service_id": [...]}}

Only ids that are well-formed UUIDs are swapped: a malformed one stays, as the negative
cases schemathesis makes on purpose must.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import schemathesis
from hypothesis import strategies as st

_IDS: dict[str, Any] = json.loads(os.environ.get("CALENDENCE_FUZZ_IDS", "{}"))
_PATHS: dict[str, dict[str, list[str]]] = _IDS.get("paths", {})
_FIELDS: dict[str, list[Any]] = _IDS.get("fields", {})


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _well_formed(value: object) -> bool:
    """An id, or a non-empty list of ids (`location_ids`)."""
    if isinstance(value, list):
        return bool(value) and all(_is_uuid(item) for item in value)
    return _is_uuid(value)


def _swapped(values: dict[str, Any], known: dict[str, list[Any]]) -> st.SearchStrategy[Any]:
    """`values` as generated, or with its well-formed ids replaced by real ones."""
    names = [name for name, value in values.items() if name in known and _well_formed(value)]
    if not names:
        return st.just(values)
    real = st.fixed_dictionaries(
        {
            name: st.sampled_from(known[name]) if name in names else st.just(value)
            for name, value in values.items()
        }
    )
    return st.one_of(st.just(values), real, real)


@schemathesis.hook
def flatmap_path_parameters(
    context: schemathesis.HookContext, path_parameters: dict[str, Any]
) -> st.SearchStrategy[Any]:
    operation = context.operation
    if operation is None or not isinstance(path_parameters, dict):
        return st.just(path_parameters)
    return _swapped(path_parameters, _PATHS.get(operation.path, {}))


@schemathesis.hook
def flatmap_query(context: schemathesis.HookContext, query: Any) -> st.SearchStrategy[Any]:
    return _swapped(query, _FIELDS) if isinstance(query, dict) else st.just(query)


@schemathesis.hook
def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    return _swapped(body, _FIELDS) if isinstance(body, dict) else st.just(body)
