"""`greentrainer.client.AsyncClient`: the same calls awaited, against the running API."""

from __future__ import annotations

import pytest

from greentrainer.client import AsyncClient, NotFoundError, UnprocessableEntityError, WaitTimeout
from tests.client.conftest import Team, play_in_background, write_rows
from tests.service.conftest import Api


@pytest.mark.asyncio
async def test_async_client_uploads_submits_pages_streams_and_waits(api: Api, team: Team,
                                                                    tmp_path) -> None:
    async with AsyncClient(str(api.client.base_url), team.key) as gt:
        sent: list[int] = []
        datasets = [await gt.datasets.upload(write_rows(tmp_path / f"d{i}.jsonl", 300),
                                             progress=lambda s, t: sent.append(s))
                    for i in range(3)]
        assert sent[-1] == datasets[-1].size_bytes
        assert [d.id async for d in gt.datasets.iter(page_size=2)] == \
            [d.id for d in datasets[::-1]]
        assert await gt.datasets.get(datasets[0].id) == datasets[0]
        jobs = [await gt.jobs.create(model="smollm2-135m-instruct", training_dataset=d.id,
                                     hyperparameters={"epochs": 2}) for d in datasets]
        assert [j.id async for j in gt.jobs.iter(page_size=1)] == [j.id for j in jobs[::-1]]
        page = await gt.jobs.list(limit=2)
        assert page.has_more and len(page) == 2
        job = jobs[0]
        with pytest.raises(WaitTimeout):
            await gt.jobs.wait(job.id, timeout_s=0.3)
        worker = play_in_background(api, job.id, [0.4, 0.8])
        live = [e async for e in gt.jobs.stream_events(job.id)]
        worker.join()
        assert [e.type for e in live].count("epoch") == 2
        assert [e.id for e in live] == [e.id async for e in gt.jobs.iter_events(job.id,
                                                                                  page_size=2)]
        final = await gt.jobs.wait(job.id, timeout_s=30)
        assert final.status == "succeeded" and final.last_finished_epoch == 1
        assert [e.rho for e in await gt.jobs.checkpoints(job.id)] == [0.4, 0.8]
        assert (await gt.jobs.cancel(jobs[1].id)).status == "cancelled"
        with pytest.raises(NotFoundError):
            await gt.jobs.get("job_unknown")
        with pytest.raises(UnprocessableEntityError) as invalid:
            await gt.jobs.create(model="smollm2-135m-instruct", training_dataset="ds_unknown")
        assert invalid.value.code == "unknown_dataset"
