"""The catalogue: CRUD, validation, deletes that bookings refuse, pagination, PATCH."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from tests.api import Api, Tenant, created, new_tenant
from tests.catalogue_helpers import insert_booking, invalid_fields, list_ids, problem

COLLECTIONS = ["locations", "services", "staff", "custom-fields"]
MISSING = object()
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# The `db` fixture.
pytest_plugins = ("tests.catalogue_fixtures",)


@dataclass
class Shop:
    """A business with one location and one service, to name in new documents."""

    tenant: Tenant
    location_id: str
    service_id: str

    def document(self, collection: str, **changes: Any) -> dict[str, Any]:
        """A valid document for `collection`, with `changes` (MISSING drops a field)."""
        documents: dict[str, dict[str, Any]] = {
            "locations": {
                "name": "Riverside",
                "address": "2 River Road, Bristol",
                "timezone": "Europe/Berlin",
                "opening_hours": {
                    "monday": [
                        {"opens": "09:00", "closes": "12:30"},
                        {"opens": "13:30", "closes": "18:00"},
                    ],
                    "saturday": [{"opens": "10:00", "closes": "24:00"}],
                },
            },
            "services": {
                "name": "Beard trim",
                "duration_minutes": 45,
                "price_amount": 5000,
                "currency": "EUR",
                "deposit_amount": 1000,
                "buffer_minutes": 10,
                "active": True,
                "location_ids": [self.location_id],
            },
            "staff": {
                "name": "Robin Lee",
                "email": "robin@example.com",
                "service_ids": [self.service_id],
                "location_ids": [self.location_id],
                "weekly_hours": {"tuesday": [{"opens": "09:00", "closes": "17:00"}]},
            },
            "custom-fields": {
                "key": "allergies",
                "label": "Allergies",
                "type": "select",
                "required": True,
                "options": ["nuts", "gluten"],
            },
        }
        document = {**documents[collection], **changes}
        return {k: v for k, v in document.items() if v is not MISSING}

    async def create(self, collection: str, **changes: Any) -> dict[str, Any]:
        answer = await self.tenant.api.post(
            f"/api/v1/{collection}", self.tenant.business_key, self.document(collection, **changes)
        )
        made: dict[str, Any] = created(answer)
        return made


@pytest.fixture
async def shop(tenant: Tenant) -> Shop:
    location = await tenant.location()
    service = await tenant.service([location["id"]])
    return Shop(tenant, location["id"], service["id"])


async def assert_rejected(
    shop: Shop, collection: str, body: Any, fields: set[str], *, raw: bytes | None = None
) -> None:
    """A create that answers 422 naming exactly `fields`, and writes nothing."""
    before = await list_ids(shop.tenant, collection)
    path = f"/api/v1/{collection}"
    if raw is not None:
        answer = await shop.tenant.api.post(path, shop.tenant.business_key, data=raw)
    else:
        answer = await shop.tenant.api.post(path, shop.tenant.business_key, body)
    assert invalid_fields(answer) == fields, answer.body
    assert await list_ids(shop.tenant, collection) == before


def hours(**days: list[tuple[str, str]]) -> dict[str, list[dict[str, str]]]:
    return {day: [{"opens": o, "closes": c} for o, c in ranges] for day, ranges in days.items()}


# --- create, show, list, delete ------------------------------------------------------------


@pytest.mark.parametrize("collection", COLLECTIONS)
async def test_create_answers_201_with_every_field_sent(shop: Shop, collection: str) -> None:
    sent = shop.document(collection)
    made = await shop.create(collection)
    assert {k: made[k] for k in sent} == {
        k: ({**{d: [] for d in WEEKDAYS}, **v} if k.endswith("hours") else v)
        for k, v in sent.items()
    }
    uuid.UUID(made["id"])
    assert {"object", "id", "created_at", "updated_at"} <= set(made)
    assert not {"seq", "business_id", "deleted_at"} & set(made)


@pytest.mark.parametrize("collection", COLLECTIONS)
async def test_show_answers_what_create_answered(shop: Shop, collection: str) -> None:
    made = await shop.create(collection)
    shown = await shop.tenant.api.get(
        f"/api/v1/{collection}/{made['id']}", shop.tenant.business_key
    )
    assert shown.status == 200
    assert shown.body == made


async def test_objects_name_their_kind(shop: Shop) -> None:
    kinds = {c: (await shop.create(c))["object"] for c in COLLECTIONS}
    assert kinds == {
        "locations": "location",
        "services": "service",
        "staff": "staff_member",
        "custom-fields": "custom_field",
    }


async def test_optional_fields_take_their_defaults(shop: Shop) -> None:
    service = await shop.create(
        "services", deposit_amount=MISSING, buffer_minutes=MISSING, active=MISSING
    )
    assert (service["deposit_amount"], service["buffer_minutes"], service["active"]) == (0, 0, True)
    location = await shop.create("locations", address=MISSING, opening_hours=MISSING)
    assert location["address"] is None
    assert location["opening_hours"] == {day: [] for day in WEEKDAYS}
    staff = await shop.create("staff", email=MISSING, service_ids=MISSING, weekly_hours=MISSING)
    assert (staff["email"], staff["service_ids"], staff["weekly_hours"]) == (None, [], None)
    field = await shop.create("custom-fields", type="text", required=MISSING, options=MISSING)
    assert (field["required"], field["options"]) == (False, [])


async def test_weekly_hours_read_monday_first(shop: Shop) -> None:
    made = await shop.create("locations", opening_hours=hours(sunday=[("10:00", "12:00")]))
    assert list(made["opening_hours"]) == list(WEEKDAYS)


async def test_currency_is_upper_cased(shop: Shop) -> None:
    assert (await shop.create("services", currency="gbp"))["currency"] == "GBP"


@pytest.mark.parametrize("collection", COLLECTIONS)
async def test_list_shows_items_in_creation_order(shop: Shop, collection: str) -> None:
    before = await list_ids(shop.tenant, collection)
    made = [
        (
            await shop.create(
                collection, **({"key": f"k{i}"} if collection == "custom-fields" else {})
            )
        )["id"]
        for i in range(3)
    ]
    assert await list_ids(shop.tenant, collection) == before + made


@pytest.mark.parametrize("collection", COLLECTIONS)
async def test_deleted_item_answers_404_and_leaves_the_list(shop: Shop, collection: str) -> None:
    made = await shop.create(collection)
    path = f"/api/v1/{collection}/{made['id']}"
    assert (await shop.tenant.api.delete(path, shop.tenant.business_key)).status == 204
    problem(await shop.tenant.api.get(path, shop.tenant.business_key), 404)
    problem(await shop.tenant.api.patch(path, shop.tenant.business_key, {}), 404)
    problem(await shop.tenant.api.delete(path, shop.tenant.business_key), 404)
    assert made["id"] not in await list_ids(shop.tenant, collection)


async def test_a_deleted_custom_field_key_can_be_used_again(shop: Shop) -> None:
    first = await shop.create("custom-fields")
    path = f"/api/v1/custom-fields/{first['id']}"
    assert (await shop.tenant.api.delete(path, shop.tenant.business_key)).status == 204
    again = await shop.create("custom-fields")
    assert again["key"] == first["key"]


async def test_staff_cannot_name_a_deleted_location(shop: Shop) -> None:
    location = await shop.create("locations")
    path = f"/api/v1/locations/{location['id']}"
    assert (await shop.tenant.api.delete(path, shop.tenant.business_key)).status == 204
    body = shop.document("staff", location_ids=[location["id"]])
    await assert_rejected(shop, "staff", body, {"location_ids.0"})


async def test_a_deleted_location_leaves_the_services_and_staff_that_listed_it(
    shop: Shop,
) -> None:
    gone = await shop.create("locations")
    both = [shop.location_id, gone["id"]]
    service = await shop.create("services", location_ids=both)
    staff = await shop.create("staff", service_ids=[service["id"]], location_ids=both)
    key = shop.tenant.business_key
    assert (await shop.tenant.api.delete(f"/api/v1/locations/{gone['id']}", key)).status == 204
    for collection, made in (("services", service), ("staff", staff)):
        path = f"/api/v1/{collection}/{made['id']}"
        assert (await shop.tenant.api.get(path, key)).body["location_ids"] == [shop.location_id]
        # So a PATCH of something else is not refused for an id nobody can fix.
        assert (await shop.tenant.api.patch(path, key, {"name": "Renamed"})).status == 200


async def test_a_deleted_service_leaves_the_staff_who_performed_it(shop: Shop) -> None:
    gone = await shop.create("services")
    staff = await shop.create("staff", service_ids=[gone["id"], shop.service_id])
    key = shop.tenant.business_key
    assert (await shop.tenant.api.delete(f"/api/v1/services/{gone['id']}", key)).status == 204
    shown = await shop.tenant.api.get(f"/api/v1/staff/{staff['id']}", key)
    assert shown.body["service_ids"] == [shop.service_id]
    assert shown.body["updated_at"] > staff["updated_at"]


# --- validation: 422 naming each offending field, nothing written ------------------------


def hours_case(
    name: str, *, collection: str = "locations", field: str = "", **days: list[tuple[str, str]]
) -> tuple[str, str, dict[str, Any], set[str]]:
    """A rejected case of weekly hours: each bad day is named (plus `field` below it)."""
    column = "opening_hours" if collection == "locations" else "weekly_hours"
    return (name, collection, {column: hours(**days)}, {f"{column}.{day}{field}" for day in days})


REJECTED: list[tuple[str, str, dict[str, Any], set[str]]] = [
    # unknown fields, at any depth
    ("unknown-location-field", "locations", {"colour": "red"}, {"colour"}),
    ("unknown-service-field", "services", {"price": 10}, {"price"}),
    ("unknown-staff-field", "staff", {"role": "lead"}, {"role"}),
    ("unknown-custom-field-field", "custom-fields", {"default": "x"}, {"default"}),
    ("unknown-weekday", "locations", {"opening_hours": {"funday": []}}, {"opening_hours.funday"}),
    (
        "unknown-range-field",
        "locations",
        {"opening_hours": {"monday": [{"opens": "09:00", "closes": "10:00", "note": "x"}]}},
        {"opening_hours.monday.0.note"},
    ),
    # wrong types
    ("duration-as-string", "services", {"duration_minutes": "30"}, {"duration_minutes"}),
    ("price-as-float", "services", {"price_amount": 25.5}, {"price_amount"}),
    ("active-as-string", "services", {"active": "yes"}, {"active"}),
    ("location-ids-as-string", "services", {"location_ids": "all"}, {"location_ids"}),
    ("name-as-number", "locations", {"name": 5}, {"name"}),
    ("required-as-string", "custom-fields", {"required": "true"}, {"required"}),
    ("service-id-not-a-uuid", "staff", {"service_ids": ["shave"]}, {"service_ids.0"}),
    (
        "hours-as-string",
        "locations",
        {"opening_hours": {"monday": "9-5"}},
        {"opening_hours.monday"},
    ),
    ("email-not-an-email", "staff", {"email": "robin"}, {"email"}),
    # missing required fields
    (
        "location-without-name-or-zone",
        "locations",
        {"name": MISSING, "timezone": MISSING},
        {"name", "timezone"},
    ),
    ("service-without-locations", "services", {"location_ids": []}, {"location_ids"}),
    ("same-location-twice", "services", {"location_ids": "twice"}, {"location_ids"}),
    # time zones
    ("zone-unknown", "locations", {"timezone": "Mars/Olympus"}, {"timezone"}),
    ("zone-lower-case", "locations", {"timezone": "europe/london"}, {"timezone"}),
    ("zone-host-setting", "locations", {"timezone": "localtime"}, {"timezone"}),
    ("zone-posix-file", "locations", {"timezone": "posix/Europe/London"}, {"timezone"}),
    ("zone-offset", "locations", {"timezone": "+01:00"}, {"timezone"}),
    ("zone-empty", "locations", {"timezone": ""}, {"timezone"}),
    ("zone-path", "locations", {"timezone": "../../etc/passwd"}, {"timezone"}),
    # opening hours
    hours_case("hours-inverted", monday=[("17:00", "09:00")]),
    hours_case("hours-empty-range", monday=[("09:00", "09:00")]),
    hours_case("hours-overlap", tuesday=[("09:00", "12:00"), ("11:00", "14:00")]),
    hours_case(
        "hours-overlap-listed-out-of-order", tuesday=[("13:00", "18:00"), ("09:00", "13:30")]
    ),
    hours_case("hours-one-inside-another", friday=[("08:00", "20:00"), ("10:00", "11:00")]),
    hours_case(
        "hours-bad-on-two-days",
        monday=[("12:00", "11:00")],
        sunday=[("09:00", "11:00"), ("10:00", "12:00")],
    ),
    hours_case("hours-not-a-clock", monday=[("9am", "17:00")], field=".0.opens"),
    hours_case("hours-past-midnight", monday=[("09:00", "25:00")], field=".0.closes"),
    hours_case("staff-hours-inverted", collection="staff", monday=[("18:00", "08:00")]),
    # durations
    ("duration-zero", "services", {"duration_minutes": 0}, {"duration_minutes"}),
    ("duration-negative", "services", {"duration_minutes": -30}, {"duration_minutes"}),
    ("duration-over-a-day", "services", {"duration_minutes": 24 * 60 + 1}, {"duration_minutes"}),
    ("buffer-negative", "services", {"buffer_minutes": -5}, {"buffer_minutes"}),
    # prices
    ("price-negative", "services", {"price_amount": -1}, {"price_amount"}),
    ("deposit-negative", "services", {"deposit_amount": -1}, {"deposit_amount"}),
    (
        "deposit-above-price",
        "services",
        {"price_amount": 1000, "deposit_amount": 1001},
        {"deposit_amount"},
    ),
    ("price-past-2-53", "services", {"price_amount": 2**53}, {"price_amount"}),
    ("price-past-bigint", "services", {"price_amount": 2**70}, {"price_amount"}),
    # currencies
    ("currency-unknown", "services", {"currency": "ZZZ"}, {"currency"}),
    ("currency-too-long", "services", {"currency": "EURO"}, {"currency"}),
    ("currency-symbol", "services", {"currency": "€"}, {"currency"}),
    ("currency-numeric", "services", {"currency": "978"}, {"currency"}),
    ("currency-empty", "services", {"currency": ""}, {"currency"}),
    # custom fields
    ("select-without-options", "custom-fields", {"options": MISSING}, {"options"}),
    ("select-with-no-options", "custom-fields", {"options": []}, {"options"}),
    ("text-with-options", "custom-fields", {"type": "text"}, {"options"}),
    ("options-repeated", "custom-fields", {"options": ["a", "a"]}, {"options"}),
    ("type-unknown", "custom-fields", {"type": "date", "options": MISSING}, {"type"}),
    ("key-not-an-identifier", "custom-fields", {"key": "Has Spaces"}, {"key"}),
    # what PostgreSQL cannot store
    ("nul-in-name", "locations", {"name": "Main\u0000Street"}, {"name"}),
    ("nul-in-option", "custom-fields", {"options": ["a\u0000"]}, {"options"}),
    # several at once: each one named
    (
        "four-bad-fields",
        "services",
        {"duration_minutes": 0, "price_amount": -1, "currency": "ZZZ", "colour": "red"},
        {"duration_minutes", "price_amount", "currency", "colour"},
    ),
    (
        "zone-and-hours",
        "locations",
        {"timezone": "Nowhere", "opening_hours": hours(monday=[("10:00", "09:00")])},
        {"timezone", "opening_hours.monday"},
    ),
]


@pytest.mark.parametrize(
    ("collection", "changes", "fields"),
    [case[1:] for case in REJECTED],
    ids=[case[0] for case in REJECTED],
)
async def test_invalid_document_is_422_naming_each_field_and_writes_nothing(
    shop: Shop, collection: str, changes: dict[str, Any], fields: set[str]
) -> None:
    if changes.get("location_ids") == "twice":
        changes = {"location_ids": [shop.location_id, shop.location_id]}
    await assert_rejected(shop, collection, shop.document(collection, **changes), fields)


@pytest.mark.parametrize("raw", [b"{not json", b"[]", b"", b"null"])
async def test_a_body_that_is_not_a_json_object_is_422(shop: Shop, raw: bytes) -> None:
    await assert_rejected(shop, "locations", None, {"body"}, raw=raw)


@pytest.mark.parametrize(
    ("collection", "field"),
    [("staff", "service_ids"), ("staff", "location_ids"), ("services", "location_ids")],
    ids=["staff-service", "staff-location", "service-location"],
)
async def test_naming_another_business_resource_is_422(
    api: Api, hub: dict[str, str], shop: Shop, collection: str, field: str
) -> None:
    other = await new_tenant(api, hub["key"])
    location = await other.location()
    if field == "location_ids":
        mine, theirs = shop.location_id, location["id"]
    else:
        mine, theirs = shop.service_id, (await other.service([location["id"]]))["id"]
    body = shop.document(collection, **{field: [mine, theirs]})
    await assert_rejected(shop, collection, body, {f"{field}.1"})


async def test_staff_naming_unknown_ids_lists_each_of_them(shop: Shop) -> None:
    body = shop.document("staff", service_ids=[str(uuid.uuid4())], location_ids=[str(uuid.uuid4())])
    await assert_rejected(shop, "staff", body, {"service_ids.0", "location_ids.0"})


async def test_a_second_custom_field_with_the_same_key_is_422(shop: Shop) -> None:
    await shop.create("custom-fields")
    await assert_rejected(shop, "custom-fields", shop.document("custom-fields"), {"key"})


async def test_a_body_over_one_mebibyte_is_413_problem(shop: Shop) -> None:
    before = await list_ids(shop.tenant, "locations")
    body = shop.document("locations", address="x" * (1024 * 1024))
    answer = await shop.tenant.api.post("/api/v1/locations", shop.tenant.business_key, body)
    problem(answer, 413)
    assert await list_ids(shop.tenant, "locations") == before


async def test_a_patch_over_one_mebibyte_is_413_problem(shop: Shop) -> None:
    path = f"/api/v1/locations/{shop.location_id}"
    answer = await shop.tenant.api.patch(
        path, shop.tenant.business_key, {"address": "x" * (1024 * 1024)}
    )
    problem(answer, 413)
    assert (await shop.tenant.api.get(path, shop.tenant.business_key)).body["address"] is None


async def test_a_body_just_under_one_mebibyte_is_accepted(shop: Shop) -> None:
    # Far under the limit in fields, near it in bytes: spaces are valid JSON padding.
    raw = b'{"name": "Padded", "timezone": "UTC"' + b" " * (1024 * 1024 - 100) + b"}"
    answer = await shop.tenant.api.post(
        "/api/v1/locations",
        shop.tenant.business_key,
        data=raw,
        headers={"Content-Type": "application/json"},
    )
    assert created(answer)["name"] == "Padded"


async def test_business_urls_must_be_http(api: Api, hub: dict[str, str]) -> None:
    answer = await api.post(
        "/api/v1/businesses",
        hub["key"],
        {"name": "Shop", "success_url": "javascript:alert(1)", "cancel_url": "/relative"},
    )
    assert invalid_fields(answer) == {"success_url", "cancel_url"}


# --- deleting what bookings use ------------------------------------------------------------


@dataclass
class Booked:
    """A location, service and staff member, and a booking of all three."""

    shop: Shop
    ids: dict[str, str]
    booking_id: uuid.UUID

    def path(self, collection: str) -> str:
        return f"/api/v1/{collection}/{self.ids[collection]}"


async def book(shop: Shop, db: asyncpg.Connection, **booking: Any) -> Booked:
    location = await shop.create("locations")
    service = await shop.create("services", location_ids=[location["id"]])
    staff = await shop.create("staff", service_ids=[service["id"]], location_ids=[location["id"]])
    booking_id = await insert_booking(
        db,
        shop.tenant,
        location_id=location["id"],
        service_id=service["id"],
        staff_id=staff["id"],
        **booking,
    )
    ids = {"locations": location["id"], "services": service["id"], "staff": staff["id"]}
    return Booked(shop, ids, booking_id)


@pytest.mark.parametrize("collection", ["locations", "services", "staff"])
async def test_deleting_what_a_live_booking_uses_is_409_until_it_is_cancelled(
    shop: Shop, db: asyncpg.Connection, collection: str
) -> None:
    booked = await book(shop, db)
    key = shop.tenant.business_key
    body = problem(await shop.tenant.api.delete(booked.path(collection), key), 409)
    assert "booking" in body["detail"]
    assert (await shop.tenant.api.get(booked.path(collection), key)).status == 200

    await db.execute(
        "UPDATE bookings SET status = 'cancelled', cancelled_at = now() WHERE id = $1",
        booked.booking_id,
    )
    assert (await shop.tenant.api.delete(booked.path(collection), key)).status == 204
    problem(await shop.tenant.api.get(booked.path(collection), key), 404)


@pytest.mark.parametrize("status", ["pending", "in_progress"])
async def test_pending_and_in_progress_bookings_also_refuse_the_delete(
    shop: Shop, db: asyncpg.Connection, status: str
) -> None:
    booked = await book(shop, db, status=status)
    answer = await shop.tenant.api.delete(booked.path("staff"), shop.tenant.business_key)
    problem(answer, 409)


async def test_a_past_booking_does_not_refuse_the_delete_and_keeps_its_details(
    shop: Shop, db: asyncpg.Connection
) -> None:
    booked = await book(shop, db, starts_in=-timedelta(days=2))
    answer = await shop.tenant.api.delete(booked.path("locations"), shop.tenant.business_key)
    assert answer.status == 204
    # Soft-deleted: the booking still joins to what it was made against.
    row = await db.fetchrow(
        "SELECT l.name, l.deleted_at FROM bookings b JOIN locations l ON l.id = b.location_id "
        "WHERE b.id = $1",
        booked.booking_id,
    )
    assert row is not None
    assert row["deleted_at"] is not None


async def test_a_custom_field_deletes_whatever_the_bookings(
    shop: Shop, db: asyncpg.Connection
) -> None:
    await book(shop, db)
    field = await shop.create("custom-fields")
    path = f"/api/v1/custom-fields/{field['id']}"
    assert (await shop.tenant.api.delete(path, shop.tenant.business_key)).status == 204


# --- pagination ----------------------------------------------------------------------------


async def page(tenant: Tenant, collection: str, limit: int, cursor: str | None) -> dict[str, Any]:
    params = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
    answer = await tenant.api.get(f"/api/v1/{collection}", tenant.business_key, params=params)
    assert answer.status == 200, answer.body
    assert answer.body["object"] == "list"
    result: dict[str, Any] = answer.body
    return result


async def read_all_pages(
    tenant: Tenant, limit: int, between_pages: Any = None, cursor: str | None = None
) -> list[str]:
    """One pass over the locations list, calling `between_pages` after each non-last page."""
    seen: list[str] = []
    while True:
        current = await page(tenant, "locations", limit, cursor)
        assert len(current["data"]) <= limit
        seen += [item["id"] for item in current["data"]]
        if not current["has_more"]:
            return seen
        if between_pages is not None:
            await between_pages()
        cursor = current["next_cursor"]


async def test_pagination_returns_every_item_once_while_items_are_added(shop: Shop) -> None:
    made = [shop.location_id] + [(await shop.create("locations"))["id"] for _ in range(4)]

    async def add_one() -> None:
        made.append((await shop.create("locations"))["id"])

    seen = await read_all_pages(shop.tenant, 2, add_one)
    # Added at the end, so the pass meets them too; nothing twice, nothing skipped.
    assert seen == made


async def test_pagination_returns_every_item_once_under_concurrent_creates(
    shop: Shop,
) -> None:
    writers_done = asyncio.Event()

    async def writer() -> None:
        for _ in range(10):
            await shop.create("locations")

    async def writers() -> None:
        await asyncio.gather(*(writer() for _ in range(6)))
        writers_done.set()

    async def reader() -> list[list[str]]:
        passes = []
        while not writers_done.is_set():
            passes.append(await read_all_pages(shop.tenant, 3))
        return passes

    _, passes = await asyncio.gather(writers(), reader())
    final = await read_all_pages(shop.tenant, 3)
    assert len(final) == len(set(final)) == 61
    # Each pass, read while rows were being committed, is a start of the final list: no
    # row listed twice, none passed over because it committed after a later one.
    for seen in passes:
        assert seen == final[: len(seen)]


async def test_a_create_slow_to_commit_is_not_passed_over_by_a_reader(
    shop: Shop, db: asyncpg.Connection
) -> None:
    """Rows must commit in list order, or a reader pages past a late commit for good."""
    async with db.transaction():
        # A create caught between its INSERT and its COMMIT, as booking-service makes
        # one: under the business's list lock, then the row.
        await db.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            f"locations:{shop.tenant.business_id}",
        )
        await db.execute(
            "INSERT INTO locations (id, business_id, name, timezone, opening_hours) "
            "VALUES ($1, $2, 'Slow', 'UTC', '{}')",
            uuid.uuid4(),
            uuid.UUID(shop.tenant.business_id),
        )
        later = [asyncio.create_task(shop.create("locations")) for _ in range(2)]
        await asyncio.sleep(0.3)
        first = await page(shop.tenant, "locations", 2, None)
    await asyncio.gather(*later)
    seen = [item["id"] for item in first["data"]]
    if first["has_more"]:
        seen += await read_all_pages(shop.tenant, 100, cursor=first["next_cursor"])
    final = await list_ids(shop.tenant, "locations")
    assert len(final) == 4
    assert seen == final[: len(seen)]


async def test_deleting_an_item_between_pages_loses_no_other(shop: Shop) -> None:
    made = [shop.location_id] + [(await shop.create("locations"))["id"] for _ in range(5)]
    first = await page(shop.tenant, "locations", 2, None)
    gone = made[2]
    path = f"/api/v1/locations/{gone}"
    assert (await shop.tenant.api.delete(path, shop.tenant.business_key)).status == 204
    rest: list[str] = []
    cursor = first["next_cursor"]
    while cursor:
        current = await page(shop.tenant, "locations", 2, cursor)
        rest += [item["id"] for item in current["data"]]
        cursor = current["next_cursor"]
    assert [item["id"] for item in first["data"]] + rest == [i for i in made if i != gone]


async def test_the_last_page_has_no_next_cursor(shop: Shop) -> None:
    current = await page(shop.tenant, "locations", 5, None)
    assert current["has_more"] is False
    assert current["next_cursor"] is None


async def test_a_full_last_page_has_no_next_cursor(shop: Shop) -> None:
    await shop.create("locations")
    current = await page(shop.tenant, "locations", 2, None)
    assert len(current["data"]) == 2
    assert (current["has_more"], current["next_cursor"]) == (False, None)


async def test_pages_hold_twenty_items_by_default(shop: Shop) -> None:
    for index in range(20):
        await shop.create("custom-fields", key=f"field_{index}")
    answer = await shop.tenant.api.get("/api/v1/custom-fields", shop.tenant.business_key)
    assert len(answer.body["data"]) == 20
    assert answer.body["has_more"] is False
    await shop.create("custom-fields", key="field_20")
    answer = await shop.tenant.api.get("/api/v1/custom-fields", shop.tenant.business_key)
    assert len(answer.body["data"]) == 20
    assert answer.body["has_more"] is True


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten", "2.5"])
async def test_a_page_size_outside_1_to_100_is_422(shop: Shop, limit: str) -> None:
    answer = await shop.tenant.api.get(
        "/api/v1/locations", shop.tenant.business_key, params={"limit": limit}
    )
    assert invalid_fields(answer) == {"limit"}


# Not base64; base64 of a word; base64 of a number past bigint; base64 of a negative number.
@pytest.mark.parametrize("cursor", ["!!!", "d29yZA", "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5", "LTU"])
async def test_a_cursor_this_api_did_not_give_is_422(shop: Shop, cursor: str) -> None:
    answer = await shop.tenant.api.get(
        "/api/v1/locations", shop.tenant.business_key, params={"cursor": cursor}
    )
    assert invalid_fields(answer) == {"cursor"}


# --- PATCH ---------------------------------------------------------------------------------

PATCHES: dict[str, dict[str, Any]] = {
    "locations": {"name": "Renamed"},
    "services": {"price_amount": 9000},
    "staff": {"name": "Robin Lee-Smith"},
    "custom-fields": {"label": "Food allergies"},
}


@pytest.mark.parametrize("collection", COLLECTIONS)
async def test_patch_changes_only_the_named_fields(shop: Shop, collection: str) -> None:
    made = await shop.create(collection)
    path = f"/api/v1/{collection}/{made['id']}"
    answer = await shop.tenant.api.patch(path, shop.tenant.business_key, PATCHES[collection])
    assert answer.status == 200, answer.body
    expected = {**made, **PATCHES[collection]}
    assert {k: v for k, v in answer.body.items() if k != "updated_at"} == {
        k: v for k, v in expected.items() if k != "updated_at"
    }
    assert answer.body["updated_at"] > made["updated_at"]
    assert (await shop.tenant.api.get(path, shop.tenant.business_key)).body == answer.body


async def test_patch_revalidates_the_merged_document(shop: Shop) -> None:
    made = await shop.create("services")
    path = f"/api/v1/services/{made['id']}"
    # Valid alone, but below the deposit the service already has.
    answer = await shop.tenant.api.patch(path, shop.tenant.business_key, {"price_amount": 500})
    assert invalid_fields(answer) == {"deposit_amount"}
    assert (await shop.tenant.api.get(path, shop.tenant.business_key)).body == made


async def test_patch_turning_a_text_field_into_select_needs_options(shop: Shop) -> None:
    made = await shop.create("custom-fields", type="text", options=MISSING)
    path = f"/api/v1/custom-fields/{made['id']}"
    answer = await shop.tenant.api.patch(path, shop.tenant.business_key, {"type": "select"})
    assert invalid_fields(answer) == {"options"}
    assert (await shop.tenant.api.get(path, shop.tenant.business_key)).body == made


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"colour": "red"}, {"colour"}),
        ({"id": str(uuid.uuid4())}, {"id"}),
        ({"created_at": "2020-01-01T00:00:00+00:00"}, {"created_at"}),
        ({"name": None}, {"name"}),
        ({"timezone": "Mars/Olympus"}, {"timezone"}),
        ({"opening_hours": hours(monday=[("11:00", "10:00")])}, {"opening_hours.monday"}),
        ({"name": 7, "timezone": "Nowhere"}, {"name", "timezone"}),
    ],
    ids=["unknown", "id", "created-at", "null-name", "zone", "hours", "two"],
)
async def test_patch_with_invalid_fields_is_422_and_changes_nothing(
    shop: Shop, changes: dict[str, Any], fields: set[str]
) -> None:
    made = await shop.create("locations")
    path = f"/api/v1/locations/{made['id']}"
    answer = await shop.tenant.api.patch(path, shop.tenant.business_key, changes)
    assert invalid_fields(answer) == fields
    assert (await shop.tenant.api.get(path, shop.tenant.business_key)).body == made


@pytest.mark.parametrize("raw", [b"{oops", b"[1]", b'"name"'])
async def test_patch_with_a_body_that_is_not_an_object_is_422(shop: Shop, raw: bytes) -> None:
    path = f"/api/v1/locations/{shop.location_id}"
    answer = await shop.tenant.api.patch(path, shop.tenant.business_key, data=raw)
    assert invalid_fields(answer) == {"body"}


async def test_patch_naming_another_business_location_is_422(
    api: Api, hub: dict[str, str], shop: Shop
) -> None:
    other = await new_tenant(api, hub["key"])
    theirs = await other.location()
    path = f"/api/v1/services/{shop.service_id}"
    answer = await api.patch(path, shop.tenant.business_key, {"location_ids": [theirs["id"]]})
    assert invalid_fields(answer) == {"location_ids.0"}
    shown = await api.get(path, shop.tenant.business_key)
    assert shown.body["location_ids"] == [shop.location_id]


async def test_patch_with_null_clears_an_optional_field(shop: Shop) -> None:
    made = await shop.create("locations")
    path = f"/api/v1/locations/{made['id']}"
    answer = await shop.tenant.api.patch(path, shop.tenant.business_key, {"address": None})
    assert answer.status == 200
    assert answer.body["address"] is None
    assert answer.body["opening_hours"] == made["opening_hours"]


async def test_patch_replaces_weekly_hours_as_a_whole(shop: Shop) -> None:
    made = await shop.create("locations")
    path = f"/api/v1/locations/{made['id']}"
    new_week = hours(wednesday=[("07:00", "11:00")])
    answer = await shop.tenant.api.patch(
        path, shop.tenant.business_key, {"opening_hours": new_week}
    )
    assert answer.body["opening_hours"] == {day: new_week.get(day, []) for day in WEEKDAYS}


async def test_patch_with_an_empty_object_changes_nothing(shop: Shop) -> None:
    made = await shop.create("staff")
    path = f"/api/v1/staff/{made['id']}"
    answer = await shop.tenant.api.patch(path, shop.tenant.business_key, {})
    assert answer.status == 200
    assert {k: v for k, v in answer.body.items() if k != "updated_at"} == {
        k: v for k, v in made.items() if k != "updated_at"
    }


async def test_concurrent_patches_of_different_fields_both_stick(shop: Shop) -> None:
    made = await shop.create("services")
    path = f"/api/v1/services/{made['id']}"
    key = shop.tenant.business_key
    for round_ in range(15):
        name, price = f"Trim {round_}", 6000 + round_
        answers = await asyncio.gather(
            shop.tenant.api.patch(path, key, {"name": name}),
            shop.tenant.api.patch(path, key, {"price_amount": price}),
        )
        assert [a.status for a in answers] == [200, 200]
        shown = (await shop.tenant.api.get(path, key)).body
        assert (shown["name"], shown["price_amount"]) == (name, price), f"round {round_}"
