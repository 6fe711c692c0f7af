from tests.support.harness import Tenant
from tests.support.status_recorder import expect


async def test_check_database_name_available(client, tenant: Tenant):
    r = await client.get(
        tenant.project_url("check-database-name") + "?name=acme", headers=tenant.headers
    )
    expect(r, 200)
    assert r.json() == {"name": "acme", "available": True}
