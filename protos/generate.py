"""Compile protos/ into Python modules under lib/ (run by `make protos`).

The generated code is checked in; tests/test_protos.py regenerates into a temporary
folder and fails when the checked-in copy is stale.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
DEFAULT_OUT = PROTO_ROOT.parent / "lib"


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def generate(out_dir: Path) -> list[Path]:
    """Generate *_pb2.py, *_pb2_grpc.py and *.pyi for every proto; return the files."""
    well_known = str(resources.files("grpc_tools") / "_proto")
    files = [str(p.relative_to(PROTO_ROOT)) for p in proto_files()]
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--plugin=protoc-gen-mypy={Path(sys.executable).parent / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={Path(sys.executable).parent / 'protoc-gen-mypy_grpc'}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed")
    generated: list[Path] = []
    for rel in files:
        package_dir = out_dir / Path(rel).parent
        # Generated areas are regular packages so setuptools ships them.
        for parent in [package_dir, *package_dir.relative_to(out_dir).parents]:
            init = out_dir / parent / "__init__.py"
            if parent != Path(".") and not init.exists():
                init.write_text("")
        stem = Path(rel).stem
        generated += [
            package_dir / f"{stem}_pb2.py",
            package_dir / f"{stem}_pb2_grpc.py",
            package_dir / f"{stem}_pb2.pyi",
            package_dir / f"{stem}_pb2_grpc.pyi",
        ]
    return generated


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    for path in generate(out):
        print(path.relative_to(out))
