"""The house's shape, checked: the import contracts of pyproject's [tool.importlinter] (every
arrow points down; docs/architecture.md), short modules, and no comment or doc naming a file
that is not in the repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("greentrainer", "greentrainer_core", "greentrainer_carbon", "service", "worker")
MAX_MODULE_LINES = 400


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    return subprocess.run([sys.executable, "-c", command, "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_every_import_contract_is_kept() -> None:
    run = _lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


def test_an_import_pointing_up_breaks_the_contracts(tmp_path: Path) -> None:
    """The check above can fail: the same contracts on a copy whose API imports the worker."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.csv", "*.jsonl", "*.gguf"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    app = tmp_path / "service" / "app.py"
    app.write_text(app.read_text() + "\nimport worker.runner  # noqa: E402,F401\n")
    run = _lint_imports(tmp_path)
    assert run.returncode != 0
    assert "The service never imports the workers' code BROKEN" in run.stdout, run.stdout


def test_no_module_is_longer_than_the_limit() -> None:
    long = {str(path.relative_to(ROOT)): n for package in PACKAGES
            for path in (ROOT / package).rglob("*.py")
            if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}, f"modules over {MAX_MODULE_LINES} lines: {long}"


# A repository path such as service/pool/leases.py or docs/worker.md, not part of a longer path,
# a URL or a placeholder (<data_dir>/...).
_PATH = re.compile(r"(?<![\w./<>{}$-])((?:[A-Za-z_][\w-]*/)+[\w-]+\.(?:py|md|toml|yml|yaml|csv|ini|"
                   r"sh|html|js|css|jsonl))\b")
# READMEs of shipped data name the files of the package or repository the data came from.
_SOURCES_READMES = ("benchmarks/data/", "greentrainer_carbon/traces/", "greentrainer_core/sample_data/")


def test_every_file_a_comment_or_a_doc_names_exists() -> None:
    missing: dict[str, list[str]] = {}
    for path in [*ROOT.glob("*.md"), *(ROOT / "docs").glob("*.md"),
                 *(p for package in (*PACKAGES, "tests", "benchmarks", "migrations")
                   for p in (ROOT / package).rglob("*") if p.suffix in (".py", ".md"))]:
        where = str(path.relative_to(ROOT))
        if where.startswith(_SOURCES_READMES) or "__pycache__" in where:
            continue
        for match in _PATH.finditer(path.read_text(errors="replace")):
            ref = match.group(1)
            if not ((ROOT / ref).exists() or (path.parent / ref).exists()):
                missing.setdefault(where, []).append(ref)
    assert missing == {}, f"files named but not in the repository: {missing}"
