"""50 concurrent PATCHes to one record from 10 clients over real HTTP: exactly the ones made on
the current version apply, the rest get 412, and nothing is lost."""

from __future__ import annotations

import json
import threading

import httpx
from sqlalchemy import text


def test_no_lost_update_under_concurrent_patches(served, engine, people):
    token = people.token("t_concurrent", "admin")
    with engine.begin() as conn:
        rid = conn.execute(text("SELECT id FROM organisations ORDER BY id LIMIT 1")).scalar()
        start = conn.execute(
            text("SELECT version FROM organisations WHERE id = :i"), {"i": rid}
        ).scalar()
    url = f"{served}/records/organisations/{rid}"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/geo+json"}
    outcomes: list[
        tuple[int, int, int, int | None]
    ] = []  # (value, status, sent version, new version)
    lock = threading.Lock()
    barrier = threading.Barrier(10)

    def client(k: int) -> None:
        with httpx.Client(timeout=30) as http:
            barrier.wait()
            for i in range(5):
                value = k * 100 + i
                tag = http.get(url, headers=headers).headers["etag"]
                sent = int(tag.strip('"v'))
                r = http.patch(
                    url,
                    headers=headers | {"If-Match": tag},
                    content=json.dumps({"properties": {"employees": value}}),
                )
                new = int(r.headers["etag"].strip('"v')) if r.status_code == 200 else None
                with lock:
                    outcomes.append((value, r.status_code, sent, new))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(outcomes) == 50
    applied = sorted((o for o in outcomes if o[1] == 200), key=lambda o: o[3])
    refused = [o for o in outcomes if o[1] == 412]
    assert len(applied) + len(refused) == 50 and applied and refused
    # every applied edit was made on the version it replaced, and the versions run without a gap
    assert all(new == sent + 1 for _, _, sent, new in applied)
    assert [o[3] for o in applied] == list(range(start + 1, start + 1 + len(applied)))
    # every refused edit was made on a version someone else had already moved on from
    used = {sent for _, _, sent, _ in applied}
    assert all(sent in used for _, _, sent, _ in refused)
    with engine.connect() as conn:
        final = conn.execute(
            text("SELECT employees, version FROM organisations WHERE id = :i"), {"i": rid}
        ).one()
        history = conn.execute(
            text("""SELECT version, (after->'properties'->>'employees')::int FROM record_history
                                       WHERE record_type = 'organisations' AND record_id = :i AND version > :s
                                       ORDER BY version"""),
            {"i": rid, "s": start},
        ).all()
    assert tuple(final) == (applied[-1][0], applied[-1][3])
    assert [tuple(h) for h in history] == [(new, value) for value, _, _, new in applied]
    print(f"concurrency: {len(applied)} applied, {len(refused)} refused with 412")
