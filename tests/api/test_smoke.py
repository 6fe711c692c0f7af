from tests.support.harness import Tenant


async def test_check_database_name_available(client, tenant: Tenant):
    r = await client.get(
        tenant.project_url("check-database-name") + "?name=acme", headers=tenant.headers
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "acme", "available": True}
