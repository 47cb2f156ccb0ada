"""Route-table entries for the usual verbs of a REST resource (create, list, show,
update, delete, and actions on one item). The resource says once what its routes share:
paths, tag, who may call them, what a 404 on one item means; each entry says only what is
its own. Operation names and summaries follow the API's convention (`create_{noun}`,
"Create a {one}") unless an entry gives its own summary."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypedDict, Unpack

from aiohttp import web
from calendence.principals import KeyKind
from pydantic import BaseModel

from gateway.auth import MANAGING_KINDS
from gateway.contract import Body, Operation, Reply, route
from gateway.middleware import Handler


class Details(TypedDict, total=False):
    """What one entry may add to, or change in, the resource's conventions."""

    description: str
    body: Body
    query: type[BaseModel]
    paged: bool  # by default only a GET of the collection answers pages
    idempotent: bool
    conflicts: bool
    errors: Mapping[int, str]
    key_kinds: tuple[KeyKind, ...]
    needs_business: bool


Verb = Literal["create", "list", "get", "update", "delete"]
# verb -> (HTTP method, on one item (else the collection), operationId, summary)
_VERBS: dict[Verb, tuple[str, bool, str, str]] = {
    "create": ("POST", False, "create_{noun}", "Create a {one}"),
    "list": ("GET", False, "list_{nouns}", "List {many}"),
    "get": ("GET", True, "get_{noun}", "Show a {one}"),
    "update": ("PATCH", True, "update_{noun}", "Update a {one}"),
    "delete": ("DELETE", True, "delete_{noun}", "Delete a {one}"),
}


@dataclass(frozen=True)
class Resource:
    collection: str  # the collection's path: "/api/v1/webhook-endpoints"
    item: str  # one item's path: collection + "/{endpoint_id}"
    tag: str  # the docs' section; `List {tag, lowercased}` is the list's summary
    one: str  # how the docs name one item: "webhook endpoint"
    key_kinds: tuple[KeyKind, ...] = MANAGING_KINDS
    needs_business: bool = True
    missing: str = ""  # what a 404 on an item path means; by default "No such {one} ..."

    @property
    def noun(self) -> str:
        """One item in operation names (`create_{noun}`, `get_{noun}`): `webhook_endpoint`."""
        return self.one.replace(" ", "_")

    @property
    def nouns(self) -> str:
        """The collection in operation names (`list_{nouns}`): `webhook_endpoints`."""
        return self.tag.lower().replace(" ", "_")

    def route(
        self,
        verb: Verb,
        handler: Handler,
        reply: Reply,
        summary: str = "",
        **details: Unpack[Details],
    ) -> web.RouteDef:
        """The entry for one of the usual verbs (see `operation`)."""
        return route(self.operation(verb, reply, summary, **details), handler)

    def operation(
        self, verb: Verb, reply: Reply, summary: str = "", **details: Unpack[Details]
    ) -> Operation:
        """One of the usual verbs, named (and unless `summary` is given, summarised) by
        convention."""
        method, on_item, name, usual_summary = _VERBS[verb]
        path = self.item if on_item else self.collection
        name = name.format(noun=self.noun, nouns=self.nouns)
        summary = summary or usual_summary.format(one=self.one, many=self.tag.lower())
        return self._operation(method, path, name, summary, reply, **details)

    def action(
        self,
        method: str,
        suffix: str,
        name: str,
        summary: str,
        handler: Handler,
        reply: Reply,
        **details: Unpack[Details],
    ) -> web.RouteDef:
        """A route below one item (`{item}/rotate-secret`): 404 when the item is missing."""
        operation = self._operation(method, self.item + suffix, name, summary, reply, **details)
        return route(operation, handler)

    def _operation(
        self,
        method: str,
        path: str,
        name: str,
        summary: str,
        reply: Reply,
        **details: Unpack[Details],
    ) -> Operation:
        missing = {404: self.missing or f"No such {self.one} in this business"}
        # An entry's own errors come after (or replace) the missing item's 404.
        errors = {**(missing if path.startswith(self.item) else {}), **details.pop("errors", {})}
        conventional = Operation(
            method,
            path,
            name=name,
            summary=summary,
            tag=self.tag,
            key_kinds=self.key_kinds,
            needs_business=self.needs_business,
            replies=(reply,),
            paged=method == "GET" and path == self.collection,
            errors=errors,
        )
        return dataclasses.replace(conventional, **details)
