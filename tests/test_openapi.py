"""The OpenAPI document matches the real routes, method for method."""

from __future__ import annotations

import re

from web import create_app


def test_openapi_paths_match_routes(redis_url):
    app = create_app({"ENV": {"DFD_REDIS_URL": redis_url}})
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    real = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule == "/":
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        real |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == real
    for path, ops in spec["paths"].items():
        for op in ops.values():
            assert "responses" in op and op["responses"], path


def test_every_error_is_json_of_one_shape(redis_url):
    app = create_app({"ENV": {"DFD_REDIS_URL": redis_url}})
    client = app.test_client()
    for resp in (client.get("/nope"), client.put("/api/v1/jobs"),
                 client.get("/api/v1/jobs/abc?wait=99")):
        body = resp.get_json()
        assert resp.status_code in (400, 404, 405)
        assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])


def test_the_schemas_are_generated_from_the_typed_result(redis_url):
    from shared.result import Result, Video
    from web.common import MAX_WAIT

    client = create_app({"ENV": {"DFD_REDIS_URL": redis_url}}).test_client()
    first, second = (client.get("/api/v1/openapi.json").get_json() for _ in range(2))
    assert first == second  # built anew each time, nothing carried over from a request
    schemas = first["components"]["schemas"]
    assert list(schemas["Result"]["properties"]) == list(Result.model_fields)
    assert list(schemas["Video"]["properties"]) == list(Video.model_fields)
    assert schemas["Job"]["properties"]["result"] == {"$ref": "#/components/schemas/Result"}
    waits = [p["schema"]["maximum"] for op in (first["paths"]["/api/v1/jobs"]["post"],
                                               first["paths"]["/api/v1/jobs/{job_id}"]["get"])
             for p in op["parameters"] if p["name"] == "wait"]
    assert waits == [MAX_WAIT, MAX_WAIT]
