"""A small client for the public API, and factories for tenants and their catalogue."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from multidict import CIMultiDict

_names = itertools.count(1)

EVERY_DAY_9_TO_5 = {
    day: [{"opens": "09:00", "closes": "17:00"}]
    for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
}
AROUND_THE_CLOCK = {day: [{"opens": "00:00", "closes": "24:00"}] for day in EVERY_DAY_9_TO_5}


@dataclass
class Answer:
    status: int
    body: Any
    headers: CIMultiDict[str]
    content_type: str


@dataclass
class Api:
    session: aiohttp.ClientSession
    base_url: str

    async def call(
        self,
        method: str,
        path: str,
        key: str | None = None,
        json: Any = None,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> Answer:
        sent = dict(headers or {})
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        async with self.session.request(
            method, self.base_url + path, json=json, data=data, headers=sent, params=params
        ) as response:
            raw = await response.read()
            body: Any = None
            if raw and "json" in response.content_type:
                body = await response.json(content_type=None)
            elif raw:
                body = raw.decode()
            return Answer(
                response.status, body, CIMultiDict(response.headers), response.content_type
            )

    async def get(self, path: str, key: str | None = None, **kw: Any) -> Answer:
        return await self.call("GET", path, key, **kw)

    async def post(self, path: str, key: str | None = None, json: Any = None, **kw: Any) -> Answer:
        return await self.call("POST", path, key, json, **kw)

    async def patch(self, path: str, key: str | None = None, json: Any = None, **kw: Any) -> Answer:
        return await self.call("PATCH", path, key, json, **kw)

    async def delete(self, path: str, key: str | None = None, **kw: Any) -> Answer:
        return await self.call("DELETE", path, key, **kw)


def created(answer: Answer) -> Any:
    assert answer.status == 201, (answer.status, answer.body)
    return answer.body


@dataclass
class Tenant:
    """A business made through the API, with its keys and a ready catalogue."""

    api: Api
    hub_key: str
    business_id: str
    business_key: str
    extra: dict[str, Any] = field(default_factory=dict)

    async def session_token(self) -> str:
        return str(created(await self.api.post("/api/v1/sessions", self.business_key))["token"])

    async def create(self, collection: str, document: dict[str, Any]) -> dict[str, Any]:
        answer = await self.api.post(f"/api/v1/{collection}", self.business_key, document)
        result: dict[str, Any] = created(answer)
        return result

    async def location(self, **overrides: Any) -> dict[str, Any]:
        return await self.create(
            "locations",
            {
                "name": f"Location {next(_names)}",
                "timezone": "Europe/London",
                "opening_hours": EVERY_DAY_9_TO_5,
                **overrides,
            },
        )

    async def service(self, location_ids: list[str], **overrides: Any) -> dict[str, Any]:
        return await self.create(
            "services",
            {
                "name": f"Service {next(_names)}",
                "duration_minutes": 30,
                "price_amount": 2500,
                "currency": "EUR",
                "location_ids": location_ids,
                **overrides,
            },
        )

    async def staff(
        self, service_ids: list[str], location_ids: list[str], **overrides: Any
    ) -> dict[str, Any]:
        return await self.create(
            "staff",
            {
                "name": f"Staff {next(_names)}",
                "service_ids": service_ids,
                "location_ids": location_ids,
                **overrides,
            },
        )


async def new_tenant(api: Api, hub_key: str) -> Tenant:
    business = created(
        await api.post("/api/v1/businesses", hub_key, {"name": f"Business {next(_names)}"})
    )
    key = created(
        await api.post("/api/v1/api-keys", hub_key, headers={"Calendence-Business": business["id"]})
    )
    return Tenant(api, hub_key, business["id"], key["token"])


def tomorrow_at(hour: int, minute: int = 0) -> datetime:
    """A time tomorrow in UTC: inside 09:00-17:00 London hours for hour 10..15."""
    day = datetime.now(UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat()
