"""At a terminal `greentrainer jobs watch` draws a live bar (epoch, rho, loss, CO2 so far);
`--no-progress` silences it there too."""

from __future__ import annotations

import json
import os
import sys

from tests.client.conftest import REPO, Team, cli, play_in_background, write_rows
from tests.client.terminal import REDRAW, run_in_terminal
from tests.service.conftest import Api


def _watch(api: Api, team: Team, tmp_path, *flags: str) -> tuple[int, str, str]:
    url = str(api.client.base_url)
    created = cli("jobs", "create", "--file", str(write_rows(tmp_path / "t.jsonl")), "--epochs",
                  "2", "--rho", "0.5", "--json", base_url=url, key=team.key)
    job_id = json.loads(created.stdout)["id"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENTRAINER_")}
    env.update(PYTHONPATH=str(REPO), GREENTRAINER_BASE_URL=url, GREENTRAINER_API_KEY=team.key)
    worker = play_in_background(api, job_id, [0.5, 0.5], step_s=0.3)
    code, screen = run_in_terminal([sys.executable, "-m", "greentrainer", "jobs", "watch", job_id,
                                    *flags], env=env, cwd=str(REPO))
    worker.join()
    return code, screen, job_id


def test_watch_at_a_terminal_draws_a_live_progress_bar(api: Api, team: Team, tmp_path) -> None:
    code, screen, job_id = _watch(api, team, tmp_path)
    assert code == 0, screen
    assert REDRAW.search(screen), screen  # the bar redraws its line
    assert "2/2" in screen and "epoch 2/2" in screen and "rho 0.50" in screen, screen
    assert "loss 1.5000" in screen and "CO2 4.00 g" in screen, screen
    assert "status: queued -> running" in screen, screen
    assert screen.rstrip().endswith(f"job {job_id} succeeded: 2 epoch(s), CO2 4.00 g"), screen


def test_no_progress_silences_the_bar_at_a_terminal(api: Api, team: Team, tmp_path) -> None:
    code, screen, job_id = _watch(api, team, tmp_path, "--no-progress")
    assert code == 0, screen
    assert not REDRAW.search(screen), screen
    lines = screen.splitlines()
    assert any("epoch_start" in line and "rho 0.50" in line for line in lines), screen
    assert lines[-1].strip() == f"job {job_id} succeeded: 2 epoch(s), CO2 4.00 g"
