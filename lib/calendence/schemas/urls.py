"""Absolute http(s) URLs and web origins, as regular expressions.

The OpenAPI document states these patterns and the request models enforce the very same
ones, so a URL the document allows is one the API accepts, and the other way round. They
are written to suit JSON Schema (ECMA-262), Python's `re` and pydantic's Rust engine
alike: plain character classes, no look-around, no class set operators.
"""

from __future__ import annotations

_HEX_GROUP = "[0-9A-Fa-f]{1,4}"
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = rf"(?:{_OCTET}\.){{3}}{_OCTET}"
# RFC 4291's text forms; an IPv4 tail only after six groups or after "::".
_IPV6 = "|".join(
    (
        rf"(?:{_HEX_GROUP}:){{7}}{_HEX_GROUP}",
        rf"(?:{_HEX_GROUP}:){{1,7}}:",
        rf"(?:{_HEX_GROUP}:){{1,6}}:{_HEX_GROUP}",
        rf"(?:{_HEX_GROUP}:){{1,5}}(?::{_HEX_GROUP}){{1,2}}",
        rf"(?:{_HEX_GROUP}:){{1,4}}(?::{_HEX_GROUP}){{1,3}}",
        rf"(?:{_HEX_GROUP}:){{1,3}}(?::{_HEX_GROUP}){{1,4}}",
        rf"(?:{_HEX_GROUP}:){{1,2}}(?::{_HEX_GROUP}){{1,5}}",
        rf"{_HEX_GROUP}:(?::{_HEX_GROUP}){{1,6}}",
        rf":(?::{_HEX_GROUP}){{1,7}}",
        "::",
        rf"(?:{_HEX_GROUP}:){{6}}{_IPV4}",
        rf"::(?:{_HEX_GROUP}:){{0,5}}{_IPV4}",
    )
)
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# A DNS name (letters, digits, hyphens; an optional root dot) or a bracketed IPv6 address.
HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*\.?|\[(?:{_IPV6})\])"
PORT = "(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0)"
# RFC 3986's unreserved and sub-delims characters, ":" and "@", or a %XX escape; and
# braces, for templates such as Stripe's `?session_id={CHECKOUT_SESSION_ID}`.
_PCHAR = "(?:[A-Za-z0-9._~!$&'()*+,;=:@{}-]|%[0-9A-Fa-f]{2})"
_TAIL = rf"(?:/(?:{_PCHAR}|/)*)?(?:\?(?:{_PCHAR}|[/?])*)?(?:#(?:{_PCHAR}|[/?])*)?"

# A browser origin: scheme, host and optional port, nothing more.
ORIGIN_PATTERN = rf"^https?://{HOST}(?::{PORT})?$"
# An absolute http or https URL without user information.
HTTP_URL_PATTERN = rf"^https?://{HOST}(?::{PORT})?{_TAIL}$"
