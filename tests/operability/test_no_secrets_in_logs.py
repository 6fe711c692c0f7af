"""Nothing secret in any log line, at any level, in either format, across a whole lifecycle:
provision -> ready -> reset-password -> deprovision -> deleted (issue 12, "Must hold")."""

from __future__ import annotations

import logging
import uuid

import httpx

from app.devtools.embedded import PasswordCheckingCluster
from app.settings import Settings
from tests.operability.logs import captured_logs
from tests.support.harness import Tenant
from tests.support.lifecycle import provision, run_burst_worker, wait_for_state
from tests.support.status_recorder import expect


async def test_a_lifecycle_logs_no_secret(
    client: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
    warehouse_cluster: PasswordCheckingCluster,
):
    with captured_logs(logging.DEBUG) as logs:
        name = "sec" + uuid.uuid4().hex[:10]
        r = await provision(client, tenant, name)
        expect(r, 202)
        passwords = [r.json()["password"]]
        await run_burst_worker(settings)
        await wait_for_state(client, tenant, {"ready"})
        # A key in the query string and in a body, as some clients send it.
        r = await client.get(
            tenant.env_url("warehouse_status"), params={"personal_api_key": tenant.key}
        )
        expect(r, 200)
        r = await client.post(
            tenant.env_url("reset-password"), json={"personal_api_key": tenant.key}
        )
        expect(r, 200)
        passwords.append(r.json()["password"])
        r = await client.post(tenant.env_url("deprovision"), headers=tenant.headers)
        expect(r, 202)
        await run_burst_worker(settings)
        await wait_for_state(client, tenant, {"deleted"})
        # A bad key, and an internal call with a wrong token, are logged as refusals only.
        await client.get(
            tenant.env_url("warehouse_status"), headers={"Authorization": "Bearer phx_" + "z" * 43}
        )
        await client.get("/metrics", headers={"Authorization": "Bearer wrong-token-secret"})

    text = logs.text.getvalue()
    json_text = logs.json.getvalue()
    assert logs.json_records()  # parses, line by line
    assert len(logs.access()) >= 6
    levels = {rec["level"] for rec in logs.json_records()}
    assert "DEBUG" in levels or "INFO" in levels
    secrets = {
        "personal API key": tenant.key,
        "key body": tenant.key.removeprefix("phx_"),
        "internal token": settings.internal_api_token.get_secret_value(),
        "secret key": settings.secret_key.get_secret_value(),
        "cluster admin password": warehouse_cluster.admin_password,
        "wrong token": "wrong-token-secret",
        **{f"password {i}": p for i, p in enumerate(passwords)},
    }
    for what, secret in secrets.items():
        assert secret not in text, what
        assert secret not in json_text, what
