"""The packages type-check: one plain `mypy greentrainer greentrainer_core greentrainer_carbon
service worker` under pyproject's [tool.mypy], which types the core and the carbon package as
strictly as `mypy --strict` and the rest at mypy's defaults."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("greentrainer", "greentrainer_core", "greentrainer_carbon", "service", "worker")


def _mypy(cwd: Path, *args: str, cache_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(cache_dir), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )


def test_the_packages_type_check() -> None:
    # The repository's own (git-ignored) cache, which a plain `mypy` run shares: a warm run takes
    # seconds, a cold one (torch and transformers analysed) a minute or two.
    run = _mypy(ROOT, *PACKAGES, cache_dir=ROOT / ".mypy_cache")
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_core_and_the_carbon_package_are_typed_strictly(tmp_path: Path) -> None:
    """The check above holds the core to --strict: an unannotated function fails there, and only
    there (the same module in the commands package passes at mypy's defaults)."""
    for package in ("greentrainer_core", "greentrainer_carbon", "greentrainer"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
        (tmp_path / package / "probe.py").write_text("def double(x):\n    return 2 * x\n")
    run = _mypy(tmp_path, "greentrainer_core", "greentrainer_carbon", "greentrainer",
                cache_dir=tmp_path / ".mypy_cache")
    assert run.returncode == 1, run.stdout + run.stderr
    failing = sorted(Path(line.split(":")[0]).parent.name for line in run.stdout.splitlines() if ": error:" in line)
    assert failing == ["greentrainer_carbon", "greentrainer_core"], run.stdout
    assert "[no-untyped-def]" in run.stdout
