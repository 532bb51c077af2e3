"""A small Dask cluster per test module (2 worker processes, 1 thread each), closed after."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def client():
    from diffsys import distributed as dist

    with dist.local_cluster(n_workers=2, threads_per_worker=1) as c:
        c.wait_for_workers(2, timeout=60)
        yield c
