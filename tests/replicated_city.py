"""A private cluster of a test's own with a copy of the test city and a hot standby of it.

The shared test cluster is never restarted (other runs use it): a test that needs a primary with
``wal_level = replica`` and a standby makes its own cluster under a temporary ONEMAP_HOME, loads
the small demo city into it (as the conftest does: pg_restore cannot rebuild our indexes on
SQL functions under its empty search_path), and starts a replica
(api.cluster_replica). Everything is stopped and removed at the end, even on failure.
"""

from __future__ import annotations

import shutil
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

NAME = "onemap_replicated"


def free_port(start: int) -> int:
    for port in range(start, start + 200, 2):
        with socket.socket() as a, socket.socket() as b:
            if a.connect_ex(("127.0.0.1", port)) and b.connect_ex(("127.0.0.1", port + 1)):
                return port
    raise RuntimeError("no two free loopback ports")


@dataclass
class Replicated:
    home: Path
    cluster: object  # api.cluster.Cluster
    replica: object  # api.cluster_replica.Replica
    settings: object  # geo.settings.DatabaseSettings

    @property
    def primary_url(self) -> str:
        return self.cluster.url(NAME)


@contextmanager
def replicated_city(home: Path, base_port: int = 55500):
    """The small demo city in a new primary under ``home``, with its replica."""
    from api.bootstrap import prepare_demo
    from api.cluster import Cluster
    from api.cluster_replica import Replica
    from geo.settings import DatabaseSettings

    settings = DatabaseSettings(home=home, port=free_port(base_port), name=NAME, url=None)
    cluster = Cluster(settings)
    replica = Replica(settings)
    try:
        cluster.up(echo=lambda *_: None)
        prepare_demo(cluster.url(NAME), scale="small")
        replica.up(echo=lambda *_: None)
        yield Replicated(home, cluster, replica, settings)
    finally:
        replica.down(echo=lambda *_: None, immediate=True)
        cluster.down(echo=lambda *_: None)
        shutil.rmtree(home, ignore_errors=True)
        data_home = cluster.data.parent
        if data_home != home:
            shutil.rmtree(data_home, ignore_errors=True)
