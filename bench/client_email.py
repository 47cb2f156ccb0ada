"""What one client email costs notify-service: CPU per confirmation, composed
(`notify_service.mail.compose`: the texts, the .ics attachment) and flattened to the
bytes the SMTP client sends (`notify_service.mail.flatten`), for a location in UTC
and one in a zone with summer time (its calendar file carries a VTIMEZONE).

    .venv/bin/python bench/client_email.py          # a few seconds
    .venv/bin/python bench/client_email.py --tiny   # proves it works

In this process, on one core, nothing else measured: the floor under what the hold
then book bench's notify-service row spends on each booking's email.

Results: bench/results/client-email-<time>.json and .txt.
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from notify_service import mail
from results_files import write_results

HERE = Path(__file__).resolve().parent
ZONES = ("UTC", "Europe/Paris")
SENDER = "Calendence <no-reply@calendence.test>"


def confirmation_event(zone: str) -> dict[str, Any]:
    return {
        "type": "booking.created",
        "timestamp": "2027-01-04T09:00:00+00:00",
        "business": {"name": "Salon Élise", "client_emails": ["confirmation"]},
        "data": {
            "id": str(uuid.uuid4()),
            "status": "confirmed",
            "version": 1,
            "updated_at": "2027-01-04T09:00:00+00:00",
            "starts_at": "2027-03-28T09:00:00+00:00",
            "ends_at": "2027-03-28T09:30:00+00:00",
            "service": {"name": "Haircut"},
            "location": {"name": "Main", "address": "1 Rue Neuve", "timezone": zone},
            "staff": {"name": "Ann"},
            "client": {"first_name": "Jane", "last_name": "Doe", "email": "jane@example.com"},
            "manage_url": "https://calendence.test/manage/abc",
        },
    }


def us_per_email(zone: str, emails: int) -> dict[str, float]:
    event = confirmation_event(zone)
    for _ in range(emails // 10):  # warm caches (templates, zones) as a running service has
        mail.flatten(mail.compose("confirmation", event, uuid.uuid4(), SENDER))
    started = time.process_time()
    composed = [mail.compose("confirmation", event, uuid.uuid4(), SENDER) for _ in range(emails)]
    after_compose = time.process_time()
    for message in composed:
        mail.flatten(message)
    done = time.process_time()
    return {
        "compose_us": (after_compose - started) / emails * 1e6,
        "flatten_us": (done - after_compose) / emails * 1e6,
        "email_us": (done - started) / emails * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emails", type=int, default=3000, help="emails per zone (3000)")
    parser.add_argument("--tiny", action="store_true", help="50 emails per zone")
    parser.add_argument("--results-dir", type=Path, default=HERE / "results")
    args = parser.parse_args()
    emails = 50 if args.tiny else args.emails
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    zones = {zone: us_per_email(zone, emails) for zone in ZONES}
    lines = [
        f"Client email CPU, {started_at}: {emails} confirmations per zone, one process",
        f"{'location zone':<16}{'compose us':>12}{'flatten us':>12}{'us per email':>14}",
    ]
    for zone, cost in zones.items():
        lines.append(
            f"{zone:<16}{cost['compose_us']:>12,.0f}{cost['flatten_us']:>12,.0f}"
            f"{cost['email_us']:>14,.0f}"
        )
    summary = "\n".join(lines)
    print(summary)
    document = {"started_at": started_at, "emails_per_zone": emails, "zones": zones}
    write_results(args.results_dir, "client-email", document, summary)


if __name__ == "__main__":
    main()
