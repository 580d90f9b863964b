"""moto's standalone S3 server in its own process on 127.0.0.1, and a look into its buckets.

A separate process, so the replicas' uploads never compete with the test for its GIL.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx2
from httpproc import free_port

START_SECONDS = 30
ACCESS_KEY = "test-key"
REGION = "us-east-1"


class S3Server:
    """``start()`` / ``stop()``; ``bucket()`` makes a fresh bucket and returns its name."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.secret = f"s3-canary-{secrets.token_hex(10)}"
        self.log = folder / "moto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> S3Server:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert self.proc.poll() is None, self.log.read_text(errors="replace")[-2000:]
            try:
                httpx2.get(f"{self.endpoint}/moto-api/", timeout=1)
                return self
            except httpx2.HTTPError:
                assert time.monotonic() < deadline, "moto did not start"
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def bucket(self) -> str:
        name = f"images-{secrets.token_hex(4)}"
        assert httpx2.put(f"{self.endpoint}/{name}", timeout=10).status_code == 200
        return name

    def env(self, bucket: str, prefix: str = "team") -> dict[str, str]:
        """The settings of a server keeping its image bytes in ``bucket``."""
        return {"TTAPI_STORAGE_URL": f"s3://{bucket}/{prefix}",
                "TTAPI_STORAGE_ENDPOINT": self.endpoint, "TTAPI_STORAGE_REGION": REGION,
                "TTAPI_STORAGE_ACCESS_KEY_ID": ACCESS_KEY,
                "TTAPI_STORAGE_SECRET_ACCESS_KEY": self.secret}

    def objects(self, bucket: str, prefix: str = "team") -> dict[str, bytes]:
        """Every object under ``prefix/`` (one level), by name, with its bytes."""
        import obstore
        from obstore.store import S3Store

        store = S3Store(bucket, prefix=prefix, endpoint=self.endpoint, region=REGION,
                        access_key_id=ACCESS_KEY, secret_access_key=self.secret,
                        virtual_hosted_style_request=False,
                        client_options={"allow_http": True})
        found = {}
        for page in obstore.list(store):
            for meta in page:
                name = str(meta["path"])
                if "/" not in name:
                    found[name] = bytes(obstore.get(store, name).bytes())
        return found
