"""/docs and /redoc work offline: every asset they load comes from the API itself."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings


@pytest.fixture
def client():
    # No database is needed to serve the documentation pages.
    app = create_app(ApiSettings(database_url="postgresql://nobody@127.0.0.1:1/none", api_db_timeout_s=0.1))
    with TestClient(app) as test_client:
        yield test_client


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_no_external_host_and_their_assets_are_served(client, page):
    html = client.get(page)
    assert html.status_code == 200
    references = re.findall(r'(?:src|href)=["\']([^"\']+)["\']', html.text)
    references += re.findall(r'url:\s*["\']([^"\']+)["\']', html.text)  # the OpenAPI document
    assert references, html.text
    external = [ref for ref in references if re.match(r"^(https?:)?//", ref)]
    assert external == []
    for ref in references:
        asset = client.get(ref)
        assert asset.status_code == 200, ref
        assert len(asset.content) > 100, ref
