"""The load generator's client: one-connection submitters of POST /jobs, spread over processes.

The client shares the machine with what it measures, so it must cost far less than the server:
it sends request bytes prepared once per team over plain asyncio connections and parses only
what it checks (`Connection`). A submission whose connection breaks, or that is shed with 503,
is sent again with the same Idempotency-Key, as a real client retries. Used by load_burst.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import secrets
import time
from concurrent.futures import ProcessPoolExecutor

import httpx

BODY = {"model": "smollm2-135m-instruct", "gpu_class": "any",
        "rho_policy": {"type": "fixed", "rho": 0.6}, "hyperparameters": {"epochs": 2}}


REPLY_TIMEOUT_S = 60.0  # then the connection counts as broken (TimeoutError is an OSError)
MAX_BROKEN = 5  # broken connections in a row before a submission is reported failed


class Connection:
    """One keep-alive HTTP/1.1 connection that sends prepared POSTs and reads the replies.

    The load generator shares the machine with what it measures, so it must cost far less
    than the server: httpx spent about 2 ms of CPU per request (as much as half the API's),
    and a response waited in the client's own event loop behind the parsing of the others,
    which put the client's CPU into the measured tail. This sends bytes built once per team
    and parses only the status line, Content-Length and, for a created job, its id."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def request(self, head: bytes, body: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        """Send ``head`` (request line and headers, without the blank line) and ``body``;
        returns (status, lower-cased headers, body). Raises OSError or
        asyncio.IncompleteReadError when the connection breaks (the caller reconnects)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(b"%s\r\nContent-Length: %d\r\n\r\n%s" % (head, len(body), body))
        status_and_headers = await self.reader.readuntil(b"\r\n\r\n")
        lines = status_and_headers.split(b"\r\n")
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
        if b"content-length" not in headers:
            raise OSError(f"reply without Content-Length: {lines[0]!r}")
        content = await self.reader.readexactly(int(headers[b"content-length"]))
        if headers.get(b"connection", b"").lower() == b"close":
            await self.close()
        return int(lines[0].split(b" ", 2)[1]), headers, content


class Team:
    """What one team's submissions share: the request bytes up to the Idempotency-Key."""

    def __init__(self, team: dict[str, str], dataset: str, host: str, port: int) -> None:
        self.id = team["X-Team-Id"]
        self.head = (f"POST /jobs HTTP/1.1\r\nHost: {host}:{port}\r\n"
                     f"Authorization: {team['Authorization']}\r\n"
                     "Content-Type: application/json\r\nIdempotency-Key: ").encode()
        self.body = json.dumps({**BODY, "training_dataset": dataset}).encode()


async def submit(connection: Connection, team: Team, retry: bool, latencies: list[float],
                  accepted: dict[str, tuple[str, str]], errors: list[str]) -> None:
    key = secrets.token_hex(12)
    head = team.head + key.encode()
    job_id = None
    sends, broken = (2 if retry else 1), 0
    while sends > 0:
        start = time.perf_counter()
        try:
            status, headers, content = await asyncio.wait_for(
                connection.request(head, team.body), REPLY_TIMEOUT_S)
        except (OSError, asyncio.IncompleteReadError) as exc:  # outcome unknown: retry, same key
            await connection.close()
            broken += 1
            if broken == MAX_BROKEN:
                errors.append(f"POST gave up after {MAX_BROKEN} broken connections ({exc!r})")
                return
            errors.append(f"POST {type(exc).__name__} (retried)")
            continue
        latencies.append((time.perf_counter() - start) * 1000)
        if status == 503:  # overload shed by the API: retry as told, same key
            errors.append("POST 503 (retried after Retry-After)")
            await asyncio.sleep(float(headers.get(b"retry-after", b"1")))
            continue
        sends -= 1
        if status not in (200, 201):
            errors.append(f"POST {status} {content[:120]!r}")
            return
        got = json.loads(content)["id"]
        if job_id is not None and got != job_id:
            errors.append("a retry with the same key returned another job")
        job_id = got
    accepted[key] = (team.id, str(job_id))


Work = list[tuple[dict[str, str], str, bool]]  # (team headers, data set id, sent twice)


async def submitters(base_url: str, work: Work, concurrency: int
                      ) -> tuple[list[float], dict[str, tuple[str, str]], list[str]]:
    """`concurrency` submitters, each with its own connection, work through `work`."""
    latencies: list[float] = []
    accepted: dict[str, tuple[str, str]] = {}
    errors: list[str] = []
    url = httpx.URL(base_url)
    host, port = url.host, url.port or 80
    teams: dict[str, Team] = {}
    for t, dataset, _ in work:  # one request prefix and body per team, not per submission
        if t["X-Team-Id"] not in teams:
            teams[t["X-Team-Id"]] = Team(t, dataset, host, port)
    queue = ((teams[t["X-Team-Id"]], retry) for t, _, retry in work)

    async def submitter() -> None:
        connection = Connection(host, port)
        try:
            for team, retry in queue:
                await submit(connection, team, retry, latencies, accepted, errors)
        finally:
            await connection.close()

    await asyncio.gather(*(submitter() for _ in range(concurrency)))
    return latencies, accepted, errors


def client_process(base_url: str, work: Work, concurrency: int
                    ) -> tuple[list[float], dict[str, tuple[str, str]], list[str]]:
    return asyncio.run(submitters(base_url, work, concurrency))


def submit_burst(base_url: str, teams: list[tuple[dict[str, str], str]], per_team: int,
           concurrency: int, retry_share: float, accepted: dict[str, tuple[str, str]],
           errors: list[str], procs: int = 1) -> list[float]:
    """One burst: per_team submissions by every team, `concurrency` in flight in all, spread over
    `procs` client processes (one Python process tops out at a few hundred requests a second)."""
    every = max(1, round(1 / retry_share)) if retry_share > 0 else 0
    work = [(team, dataset, bool(every) and i % every == 0)
            for i in range(per_team) for team, dataset in teams]
    procs = max(1, min(procs, concurrency))
    shares = [concurrency // procs + (1 if i < concurrency % procs else 0) for i in range(procs)]
    if procs == 1:
        results = [client_process(base_url, work, concurrency)]
    else:
        with ProcessPoolExecutor(procs, mp_context=multiprocessing.get_context("fork")) as pool:
            results = list(pool.map(client_process, [base_url] * procs,
                                    [work[i::procs] for i in range(procs)], shares))
    latencies: list[float] = []
    for done, ok, failed in results:
        latencies += done
        accepted.update(ok)
        errors += failed
    return latencies
