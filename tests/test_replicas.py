"""Three replicas behind haproxy on one PostgreSQL and one S3 bucket (moto's S3 server),
end to end with real processes; each replica has its own output folder, as stateless
replicas on separate machines do.

Both protocol eras through the balancer (2026-07-28 round robin per request; a
2025-11-25 session sticks to its replica on ``Mcp-Session-Id``); a job started through
one replica and collected through another; TTAPI's hook reaching whichever replica the
balancer picks; a replica SIGKILLed mid-4o-job replaced by another that resumes the job
after its lease and saves the image once; and a bounded load through the balancer with
upstream faults and one replica restarted halfway.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest
from conftest import CANARY_KEY
from httpproc import free_port
from replicas import Balancer, Replica, haproxy_binary, replica_env

from ttapi_mcp.emulator import Emulator, EmulatorServer, Fault

pytestmark = pytest.mark.anyio
DALLE2 = {"prompt": "a replicated lighthouse", "model": "dall-e-2", "size": "256x256",
          "response_format": "b64_json"}
LOAD_CALLS = 200
LOAD_CONCURRENCY = 20
FAULT_EVERY = 20  # 5% of the calls
FAULTS = itertools.cycle([{"status": 503}, {"status": 500}, {"kind": "drop"},
                          {"status": 502}, {"kind": "malformed_json"}])


@pytest.fixture(scope="module")
def emulator_server() -> Iterator[EmulatorServer]:
    """This module's own emulator (it counts requests and queues faults)."""
    with EmulatorServer(Emulator(), host="127.0.0.1", port=0) as server:
        yield server


class Deployment:
    def __init__(self, replicas: list[Replica], balancer: Balancer, url: str,
                 folder: Path, env: dict[str, str], s3: Any, bucket: str) -> None:
        self.replicas, self.balancer, self.url = replicas, balancer, url
        self.folder, self.env, self.s3, self.bucket = folder, env, s3, bucket

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url) as conn:
            return conn.execute(sql, args).fetchall()

    def check_objects_match_rows(self) -> None:
        """Every row has its object, byte for byte, and every object its row."""
        objects = self.s3.objects(self.bucket)
        rows = {Path(path).name: sha for path, sha in self.rows("SELECT path, sha256 FROM images")}
        assert set(objects) == set(rows)
        for name, data in objects.items():
            assert hashlib.sha256(data).hexdigest() == rows[name], name


@pytest.fixture(scope="module")
def deployment(
    emulator_server: EmulatorServer, pg_cluster: Any, s3_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    binary = haproxy_binary()
    if binary is None:
        pytest.skip("no haproxy: apt-get install haproxy")
    folder = tmp_path_factory.mktemp("replicas")
    url = pg_cluster.new_schema_url()
    port = free_port()
    bucket = s3_server.bucket()
    env = {**replica_env(emulator_server.base_url, CANARY_KEY, folder, url,
                         f"http://127.0.0.1:{port}"), **s3_server.env(bucket)}
    replicas = [Replica(f"r{i}", {**env, "TTAPI_OUTPUT_DIR": str(folder / f"out-r{i}")}, folder)
                for i in range(3)]
    balancer = Balancer(binary, [r.port for r in replicas], folder, port)
    try:
        for replica in replicas:
            replica.start()
        balancer.start()
        yield Deployment(replicas, balancer, url, folder, env, s3_server, bucket)
    finally:
        balancer.stop()
        for replica in replicas:
            replica.stop()
    for replica in replicas:
        log = replica.log.read_text(errors="replace")
        assert CANARY_KEY not in log and "Traceback" not in log, log[-3000:]
        assert s3_server.secret not in log


async def _client(url: str, mode: str = "auto") -> Any:
    from mcp import Client

    return Client(f"{url}/mcp", mode=mode)


def _text(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


async def test_both_protocol_eras_through_the_balancer(
    emulator: Emulator, deployment: Deployment, client_mode: str
) -> None:
    from mcp import Client

    async with Client(f"{deployment.balancer.origin}/mcp", mode=client_mode) as client:
        results = [await client.call_tool("generate_image",
                                          {**DALLE2, "prompt": f"era {client_mode} {i}"})
                   for i in range(3)]
        reads = [await client.read_resource(r.structured_content["images"][0]["uri"])
                 for r in results]
        listed = {str(r.uri) for r in (await client.list_resources()).resources}
    for result, read in zip(results, reads, strict=True):
        assert not result.is_error, _text(result)
        assert read.contents[0].mime_type == "image/png"
        assert result.structured_content["images"][0]["uri"] in listed
    served_by = deployment.rows("SELECT DISTINCT owner_id FROM jobs WHERE prompt LIKE %s",
                                f"era {client_mode} %")
    if client_mode == "legacy":  # one session, stuck to one replica
        assert len(served_by) == 1, served_by
    else:  # each request on its own: round robin over the replicas
        assert len(served_by) >= 2, served_by


async def test_a_job_started_through_one_replica_is_collected_through_another(
    emulator: Emulator, deployment: Deployment
) -> None:
    from mcp import Client

    emulator.options.job_seconds = 1.0
    first, second = deployment.replicas[0], deployment.replicas[1]
    async with Client(f"{first.origin}/mcp") as a:
        submitted = await a.call_tool("gpt4o_image", {"prompt": "a ferry", "wait": False})
    job_id = submitted.structured_content["job_id"]
    async with Client(f"{second.origin}/mcp") as b:
        fetched = await b.call_tool("fetch_job", {"job_id": job_id, "wait": True})
    assert not fetched.is_error, _text(fetched)
    [image] = fetched.structured_content["images"]
    assert Path(image["path"]).is_file()
    assert deployment.rows("SELECT count(*) FROM images WHERE job_id = %s", job_id) == [(1,)]
    # TTAPI's hook came through the balancer to whichever replica; it was accepted once.
    with anyio.fail_after(10):
        while not [h for h in emulator.hook_deliveries if h.job_id == job_id]:
            await anyio.sleep(0.05)
    [hook] = [h for h in emulator.hook_deliveries if h.job_id == job_id]
    assert hook.status == 200, hook


async def test_a_replica_killed_mid_job_is_replaced_and_the_job_saved_once(
    emulator: Emulator, deployment: Deployment
) -> None:
    from mcp import Client

    emulator.options.job_seconds = 2.0
    # No hook URL for this job: only the lease running out can hand it to another replica.
    quiet = {**deployment.env, "TTAPI_PUBLIC_BASE_URL": "",
             "TTAPI_OUTPUT_DIR": str(deployment.folder / "out-doomed")}
    doomed = Replica("doomed", quiet, deployment.folder).start()
    try:
        async with Client(f"{doomed.origin}/mcp") as client:
            submitted = await client.call_tool("gpt4o_image", {"prompt": "a lost kite",
                                                               "wait": False})
        job_id = submitted.structured_content["job_id"]
        doomed.kill()
        replacement = Replica("doomed", quiet, deployment.folder)
        replacement.port, replacement.origin = doomed.port, doomed.origin
        replacement.start()
        try:
            with anyio.fail_after(30):  # the lease (1.5 s) runs out; a peer resumes it
                while deployment.rows("SELECT image_ids FROM jobs WHERE job_id = %s",
                                      job_id) == [("[]",)]:
                    await anyio.sleep(0.1)
            async with Client(f"{deployment.balancer.origin}/mcp") as client:
                fetched = await client.call_tool("fetch_job", {"job_id": job_id})
        finally:
            replacement.stop()
    finally:
        doomed.kill()
    assert not fetched.is_error, _text(fetched)
    assert not [h for h in emulator.hook_deliveries if h.job_id == job_id]
    rows = deployment.rows("SELECT path, sha256 FROM images WHERE job_id = %s", job_id)
    assert len(rows) == 1  # saved once, by one of the replicas
    assert hashlib.sha256(Path(rows[0][0]).read_bytes()).hexdigest() == rows[0][1]
    deployment.check_objects_match_rows()  # and its object in the bucket, once


async def test_load_through_the_balancer_with_faults_and_a_replica_restarted(
    emulator: Emulator, deployment: Deployment
) -> None:
    from mcp import Client

    numbers = iter(range(LOAD_CALLS))
    saved: list[dict[str, Any]] = []
    errors: list[str] = []
    crashes: list[str] = []
    faults = 0
    restarted = anyio.Event()

    async def worker() -> None:
        nonlocal faults
        for number in numbers:
            if number % FAULT_EVERY == 0:
                emulator.add_fault(Fault(route="E1", **next(FAULTS)))
                faults += 1
            args = {**DALLE2, "prompt": f"load {number}"}
            try:  # one session per call: the balancer spreads them over the replicas
                async with Client(f"{deployment.balancer.origin}/mcp") as client:
                    result = await client.call_tool("generate_image", args)
            except Exception as exc:
                crashes.append(f"call {number}: {type(exc).__name__}: {exc}")
                continue
            if result.is_error:
                errors.append(_text(result))
            else:
                saved.extend(result.structured_content["images"])

    async def restart_halfway() -> None:
        with anyio.fail_after(120):
            while len(saved) + len(errors) + len(crashes) < LOAD_CALLS // 2:
                await anyio.sleep(0.05)
        # A rolling restart: drained at the balancer, stopped, started, back in.
        victim, balancer = deployment.replicas[2], deployment.balancer
        await anyio.to_thread.run_sync(balancer.drain, "r2")
        await anyio.to_thread.run_sync(victim.stop)
        await anyio.to_thread.run_sync(victim.start)
        balancer.ready("r2")
        restarted.set()

    with anyio.fail_after(240):
        async with anyio.create_task_group() as tg:
            tg.start_soon(restart_halfway)
            for _ in range(LOAD_CONCURRENCY):
                tg.start_soon(worker)
    assert restarted.is_set()
    assert crashes == []
    assert len(saved) + len(errors) == LOAD_CALLS  # every call answered
    assert len(errors) <= faults, errors
    for text in errors:
        assert "TTAPI" in text, text
    ids = [image["id"] for image in saved]
    assert len(set(ids)) == len(ids)  # nothing duplicated
    rows = dict(deployment.rows("SELECT id, sha256 FROM images WHERE prompt LIKE 'load %%'"))
    assert set(ids) == set(rows)  # nothing lost, nothing extra: one row per answered image
    owners = deployment.rows("SELECT DISTINCT owner_id FROM jobs WHERE prompt LIKE 'load %%'")
    assert len(owners) >= 3  # spread over the replicas (the restarted one is a new owner)
    for image in saved:  # the answering replica's copy is the recorded image
        assert hashlib.sha256(Path(image["path"]).read_bytes()).hexdigest() == rows[image["id"]]
    deployment.check_objects_match_rows()
