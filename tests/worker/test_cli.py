"""`greentrainer worker` and `greentrainer scheduler --dispatch` refuse bad options and an
un-migrated database with a message that names the fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from greentrainer.commands.worker import worker_main

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("argv, message", [
    (["--gpus", "0"], "--gpus needs --gpu-class"),
    (["--gpu-class", "a100", "--gpus", "zero"], "expected ids such as 0 or 0,1"),
    (["--gpu-class", "a100", "--gpus", "0,1,0"], "an id is given twice"),
])
def test_bad_worker_options_are_refused_by_name(argv: list[str], message: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        worker_main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("command", [["worker"], ["scheduler", "--dispatch"]])
def test_an_unmigrated_database_is_refused_with_the_migrate_command(command: list[str],
                                                                    tmp_path: Path) -> None:
    env = {**os.environ, "GREENTRAINER_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite'}",
           "GREENTRAINER_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "greentrainer.cli", *command], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "greentrainer migrate" in done.stderr
