"""Optional: compile the allocation engine's kernels (allot/pools/domain/_kernels.py) with mypyc.

    python services/pools/build_native.py          # writes services/pools/build/native/_kernels_native.<abi>.so
    python services/pools/build_native.py --force  # even when the build there is from the current source

The result is an accelerator, never a requirement: ``allot.pools.domain.estimate`` uses the compiled
module only when it exists AND was compiled from exactly the current _kernels.py (the SHA-256 of the
source is compiled into it and compared at import); otherwise, or with ALLOT_POOLS_PURE=1, the
pure-Python _kernels runs. Both compute the same numbers (same operations in the same order on IEEE
doubles; the golden test runs the engine on both). Editing _kernels.py therefore
silently falls back to pure Python until this script is run again. Needs mypy (requirements-dev) and a
C compiler; exits 0 with a note when either is missing, so ``make venv`` never fails because of it.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
KERNELS = SRC / "allot" / "pools" / "domain" / "_kernels.py"
OUT = HERE / "build" / "native"
NAME = "_kernels_native"


def _up_to_date(digest: str) -> bool:
    """A build for this interpreter from exactly this source is already there (``--force`` rebuilds anyway)."""
    stamp = OUT / "SOURCE_SHA256"
    built = any((OUT / f"{NAME}{sfx}").is_file() for sfx in importlib.machinery.EXTENSION_SUFFIXES)
    return built and stamp.is_file() and stamp.read_text().strip() == digest


def main() -> int:
    source = KERNELS.read_bytes()
    digest = hashlib.sha256(source).hexdigest()
    if "--force" not in sys.argv[1:] and _up_to_date(digest):
        print(f"build_native: up to date (source sha256 {digest[:12]})")
        return 0
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        print("build_native: no C compiler; the pure-Python kernels will be used")
        return 0
    try:
        import mypyc  # noqa: F401
    except ImportError:
        print("build_native: mypyc not installed; the pure-Python kernels will be used")
        return 0
    with tempfile.TemporaryDirectory(prefix="allot-native-") as tmp:
        root = Path(tmp)
        # A copy of the package (mypy resolves the kernels' imports in it) plus the kernels under their native name.
        shutil.copytree(SRC / "allot", root / "allot", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        target = root / "allot" / "pools" / "domain" / f"{NAME}.py"
        target.write_bytes(source + f'\n__source_sha256__ = "{digest}"\n'.encode())
        proc = subprocess.run(
            # Only the kernels are compiled: type errors elsewhere in the package must not stop it.
            [sys.executable, "-m", "mypyc", "--explicit-package-bases", "--follow-imports=silent", str(target.relative_to(root))],
            cwd=root, capture_output=True, text=True,
        )
        domain = root / "allot" / "pools" / "domain"
        built = [p for s in importlib.machinery.EXTENSION_SUFFIXES for p in domain.glob(f"{NAME}{s}")]
        if proc.returncode != 0 or not built:
            print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n")
            print("build_native: compile failed; the pure-Python kernels will be used")
            return 0
        OUT.mkdir(parents=True, exist_ok=True)
        for old in OUT.glob(f"{NAME}*"):
            old.unlink()
        # mypyc puts the compiled code in a library module next to a small shim that imports it.
        extra = [p for s in importlib.machinery.EXTENSION_SUFFIXES for p in domain.glob(f"{NAME}__mypyc{s}")]
        for p in built + extra:
            shutil.copy2(p, OUT / p.name)
        (OUT / "SOURCE_SHA256").write_text(digest + "\n")
    print(f"build_native: compiled {KERNELS.relative_to(HERE.parent.parent)} -> {OUT.relative_to(HERE.parent.parent)} (source sha256 {digest[:12]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
