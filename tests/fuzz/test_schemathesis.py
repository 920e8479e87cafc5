"""schemathesis against the OpenAPI document (responder/api/openapi.yaml), on the live app over 127.0.0.1.

Each documented operation gets generated requests (path and query parameters, bodies by their schemas) with the
write token; checks: no 5xx, the status code is one the document lists, the response's Content-Type is a documented
one, and the body conforms to the documented schema (including the error schema of every 4xx). Derandomized and
bounded, like the Hypothesis fuzzers.
"""

from __future__ import annotations

import schemathesis
from hypothesis import settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from responder.api.openapi import openapi_document
from tests.fuzz.conftest import FUZZ
from tests.fuzz.world import WRITE_TOKEN, LiveApp

schema = schemathesis.openapi.from_dict(openapi_document())
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@schema.parametrize()
@settings(FUZZ, max_examples=20)
def test_openapi_document_holds(case: schemathesis.Case, live: LiveApp, incident_id: str) -> None:
    case.call_and_validate(base_url=live.url, headers={"Authorization": f"Bearer {WRITE_TOKEN}"}, checks=CHECKS,
                           allow_redirects=False, timeout=15)
