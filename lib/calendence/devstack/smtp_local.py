"""A local SMTP server (aiosmtpd) that keeps every mail it receives as an .eml file.

`make run` and the tests send client emails here instead of to the world: each mail
lands in the mailbox folder as `<time>-<id>.eml` (open it with any mail program, or
read it with Python's `email` package). Mail to any address at REFUSED_DOMAIN is
refused with a 550, as a real server refuses an unknown mailbox, to try a bounce.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from calendence.devstack.processes import ManagedProcess, free_port, wait_for_port

REFUSED_DOMAIN = "bounce.example.com"


class Mailbox:
    """aiosmtpd handler: refuse REFUSED_DOMAIN, keep the rest as files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.lower().endswith("@" + REFUSED_DOMAIN):
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
        partial = self.folder / (name + ".part")
        # Whole files only: a reader never sees half a mail.
        partial.write_bytes(content)
        partial.rename(self.folder / name)
        return "250 Message accepted for delivery"


def start_smtp(state_dir: Path, port: int | None = None) -> tuple[str, Path, ManagedProcess]:
    """Start the server as a child process: its SMTP_URL, mailbox folder and process."""
    mailbox = state_dir / "mailbox"
    port = port or free_port()
    process = ManagedProcess(
        "smtp",
        [
            sys.executable,
            "-m",
            "calendence.devstack.smtp_local",
            "--port",
            str(port),
            "--mailbox",
            str(mailbox),
        ],
        state_dir / "logs" / "smtp.log",
    )
    wait_for_port(port, 30, process)
    return f"smtp://127.0.0.1:{port}", mailbox, process


def main() -> None:
    parser = argparse.ArgumentParser(prog="smtp_local", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mailbox", type=Path, required=True)
    args = parser.parse_args()
    controller = Controller(Mailbox(args.mailbox), hostname="127.0.0.1", port=args.port)
    controller.start()
    print(f"SMTP on 127.0.0.1:{args.port}, mail kept in {args.mailbox}", flush=True)

    def stop(*_: object) -> None:
        controller.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
