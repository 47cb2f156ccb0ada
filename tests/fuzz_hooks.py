"""Schemathesis hooks for tests/test_fuzz.py (loaded by path through SCHEMATHESIS_HOOKS).

Generated ids name nothing, so every route with an id would only ever answer 404. These
hooks swap, some of the time, a generated id (in the path, the query or the body) for one
of the test tenant's real ones, given in CALENDENCE_FUZZ_IDS as JSON:

    {"paths": {"/api/v1/locations/{id}": {"id": ["..."]}}, "fields": {"service_id": [...]}}

Only ids that are well-formed UUIDs are swapped: a malformed one stays, as the negative
cases schemathesis makes on purpose must.

The check `schema_valid_request_accepted` is schemathesis' `positive_data_acceptance`
("a request the document allows is not refused") with one exception: a refusal whose
every reason is one of the rules the test lists in CALENDENCE_FUZZ_ALLOWED_REFUSALS
(rules that depend on stored data, the clock or earlier requests, which no document can
state), as JSON:

    [{"operation": "POST /api/v1/bookings/hold", "status": 422,
      "field": "^starts_at$", "reason": "must be in the future"}]

`field` and `reason` are regular expressions searched in each entry of the problem's
`errors` (for a problem without `errors`, `reason` is searched in its `detail`).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from typing import Any

import schemathesis
from hypothesis import strategies as st
from schemathesis.generation.meta import CoveragePhaseData, CoverageScenario
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance

_IDS: dict[str, Any] = json.loads(os.environ.get("CALENDENCE_FUZZ_IDS", "{}"))
_PATHS: dict[str, dict[str, list[str]]] = _IDS.get("paths", {})
_FIELDS: dict[str, list[Any]] = _IDS.get("fields", {})
_ALLOWED_REFUSALS: list[dict[str, Any]] = json.loads(
    os.environ.get("CALENDENCE_FUZZ_ALLOWED_REFUSALS", "[]")
)


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


# The coverage phase sends one request per value of every enum: over 500 time zones and
# 300 currency codes, on each operation that takes one. Every value is still in the
# document and checked by the other phases' random draws; here the first few of each
# list and then every n-th are enough, and keep the run to seconds.
_ENUM_VALUES_FIRST = 4
_ENUM_VALUES_EVERY = 60
_enum_values_seen: dict[tuple[str, str, str], int] = {}


@schemathesis.hook
def filter_case(context: schemathesis.HookContext, case: schemathesis.Case[Any]) -> bool:
    meta = case.meta
    data = meta.phase.data if meta is not None else None
    if not isinstance(data, CoveragePhaseData) or data.scenario != CoverageScenario.ENUM_VALUE:
        return True
    key = (case.operation.label, str(data.location), str(data.parameter))
    seen = _enum_values_seen.get(key, 0)
    _enum_values_seen[key] = seen + 1
    return seen < _ENUM_VALUES_FIRST or seen % _ENUM_VALUES_EVERY == 0


def _reasons(problem: Any) -> list[tuple[str, str]]:
    """(field, reason) for each complaint in a problem document."""
    if not isinstance(problem, dict):
        return []
    errors = problem.get("errors")
    if isinstance(errors, dict) and errors:
        return [(str(field), str(reason)) for field, reason in errors.items()]
    return [("", str(problem.get("detail", "")))]


def _is_listed(operation: str, status: int, field: str, reason: str) -> bool:
    return any(
        allowed["operation"] in (operation, "*")
        and allowed["status"] == status
        and re.search(allowed["field"], field)
        and re.search(allowed["reason"], reason)
        for allowed in _ALLOWED_REFUSALS
    )


@schemathesis.check
def schema_valid_request_accepted(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        operation = f"{case.operation.method.upper()} {case.operation.path}"
        try:
            problem = response.json()
        except ValueError:
            problem = None
        reasons = _reasons(problem)
        if reasons and all(
            _is_listed(operation, response.status_code, field, reason) for field, reason in reasons
        ):
            return None
        raise
