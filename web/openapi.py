"""The OpenAPI 3 document of the job API (checked against the real routes by a test)."""

from __future__ import annotations

from shared.schema import ASSESSMENTS, REASONS


def _error(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _job_ref() -> dict:
    return {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}}


SCHEMAS = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                       "retry_after": {"type": "integer"}}}}},
    "Stability": {"type": "object",
                  "required": ["checked", "variants", "p_fake_min", "p_fake_max", "spread",
                               "unstable"],
                  "description": "P(fake) over the crop and its benign variants (JPEG re-save, "
                                 "mirror, half-size and back, a shifted crop)",
                  "properties": {"checked": {"type": "boolean", "description": "false: the "
                                             "score is so far from the threshold that the "
                                             "variants were not scored (see docs/API.md)"},
                                 "variants": {"type": "integer", "minimum": 1},
                                 "p_fake_min": {"type": "number"},
                                 "p_fake_max": {"type": "number"},
                                 "spread": {"type": "number", "minimum": 0},
                                 "unstable": {"type": "boolean", "description": "the variants "
                                              "fall on both sides of the threshold"}}},
    "Face": {"type": "object", "required": ["box", "p_fake", "stability"], "properties": {
        "box": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
        "score": {"type": "number"}, "p_fake": {"type": "number"},
        "stability": {"$ref": "#/components/schemas/Stability"}}},
    "Result": {"type": "object",
               "required": ["label", "confidence", "p_fake", "threshold", "faces", "model",
                            "assessment", "reasons", "reason_text", "stability"],
               "properties": {
                   "assessment": {"type": "string", "enum": list(ASSESSMENTS),
                                  "description": "what to take from the score; see docs/API.md"},
                   "reasons": {"type": "array",
                               "items": {"type": "string", "enum": list(REASONS)}},
                   "reason_text": {"type": "string"},
                   "stability": {"$ref": "#/components/schemas/Stability"},
                   "label": {"type": "string", "enum": ["Real", "Fake"]},
                   "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                   "p_fake": {"type": "number", "minimum": 0, "maximum": 1},
                   "threshold": {"type": "number"},
                   "face_found": {"type": "boolean"},
                   "faces": {"type": "array", "items": {"$ref": "#/components/schemas/Face"}},
                   "image": {"type": "object", "properties": {"width": {"type": "integer"},
                                                              "height": {"type": "integer"}}},
                   "model": {"type": "object", "properties": {"name": {"type": "string"},
                                                              "version": {"type": "string"}}}}},
    "Job": {"type": "object", "required": ["id", "status", "created_at"], "properties": {
        "id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        "status": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
        "created_at": {"type": "string", "format": "date-time"},
        "started_at": {"type": "string", "format": "date-time", "nullable": True},
        "finished_at": {"type": "string", "format": "date-time", "nullable": True},
        "age_s": {"type": "number"},
        "stale": {"type": "boolean"},
        "reused": {"type": "boolean"},
        "result": {"$ref": "#/components/schemas/Result"},
        "error": {"type": "string"}}},
    "Accepted": {"type": "object", "required": ["jobs"], "properties": {"jobs": {
        "type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "string"}, "status": {"type": "string"},
            "filename": {"type": "string"}, "location": {"type": "string"},
            "created_at": {"type": "string"}}}}}},
    "Answered": {"type": "object", "required": ["jobs"], "properties": {"jobs": {
        "type": "array", "items": {"allOf": [
            {"$ref": "#/components/schemas/Job"},
            {"type": "object", "properties": {"filename": {"type": "string"},
                                              "location": {"type": "string"}}}]}}}},
}


# From the upload's answer to its first job's status, so stateful API testing can follow it.
LINKS = {"GetFirstJob": {"operationId": "getJob",
                         "parameters": {"job_id": "$response.body#/jobs/0/id"}},
         "DeleteFirstJob": {"operationId": "deleteJob",
                            "parameters": {"job_id": "$response.body#/jobs/0/id"}}}


def spec() -> dict:
    """The OpenAPI document as a dict."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "Deepfake image detection API", "version": "1.0.0"},
        "servers": [{"url": "/"}],
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/api/v1/jobs": {"post": {
                "operationId": "submitJobs",
                "summary": "Submit one or more images for detection",
                "security": [{}, {"bearer": []}],
                "parameters": [
                    {"name": "wait", "in": "query", "required": False,
                     "description": "hold up to this many seconds for every job to be final",
                     "schema": {"type": "number", "minimum": 0, "maximum": 10}},
                    {"name": "Idempotency-Key", "in": "header", "required": False,
                     "description": "a retry with the same key gets the first request's jobs",
                     "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,200}$"}}],
                "requestBody": {"required": True, "content": {"multipart/form-data": {
                    "schema": {"type": "object", "required": ["image"], "properties": {
                        "image": {"type": "array", "minItems": 1,
                                  "items": {"type": "string", "format": "binary"}},
                        "priority": {"type": "string", "enum": ["page", "api", "batch"],
                                     "description": "lower your own class (never raise it)"},
                        "callback_url": {"type": "string", "format": "uri",
                                         "description": "POSTed the job when final, signed "
                                                        "(X-DFD-Signature); see docs/API.md"}}}}}},
                "responses": {
                    "200": {"description": "With ?wait=: every job final, results included",
                            "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/Answered"}}},
                            "links": LINKS},
                    "202": {"description": "Queued (with ?wait=: not all final in time)",
                            "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/Accepted"}}},
                            "links": LINKS},
                    "400": _error("Malformed request or image, or bad wait parameter"),
                    "401": _error("Unknown API key, or none where DFD_REQUIRE_API_KEY is on"),
                    "409": _error("The same Idempotency-Key is still being answered"),
                    "413": _error("Upload too large"),
                    "415": _error("Not a JPEG or PNG image"),
                    "422": _error("Idempotency-Key already used for a different request"),
                    "429": _error("Upload limit reached; see Retry-After"),
                    "503": _error("Job store unavailable")}}},
            "/api/v1/jobs/{job_id}": {"get": {
                "operationId": "getJob",
                "summary": "A job's status and result",
                "parameters": [
                    {"name": "job_id", "in": "path", "required": True,
                     "schema": {"type": "string"}},
                    {"name": "wait", "in": "query", "required": False,
                     "schema": {"type": "number", "minimum": 0, "maximum": 10}}],
                "responses": {"200": {"description": "The job", **_job_ref()},
                              "400": _error("Bad wait parameter"),
                              "404": _error("Unknown or expired job id"),
                              "429": _error("Status limit reached"),
                              "503": _error("Job store unavailable")}},
                "delete": {
                    "operationId": "deleteJob",
                    "summary": "Delete a job: record, result and any stored upload",
                    "description": "Only the client that created the job: the same API key, "
                                   "or the same address when it was sent without one.",
                    "security": [{}, {"bearer": []}],
                    "parameters": [{"name": "job_id", "in": "path", "required": True,
                                    "schema": {"type": "string"}}],
                    "responses": {
                        "200": {"description": "Deleted; a GET now answers 404",
                                "content": {"application/json": {"schema": {
                                    "type": "object", "required": ["id", "status"],
                                    "properties": {"id": {"type": "string"},
                                                   "status": {"enum": ["deleted"]}}}}}},
                        "401": _error("Unknown API key"),
                        "403": _error("Not the client that created the job"),
                        "404": _error("Unknown, expired or deleted job id"),
                        "429": _error("Status limit reached"),
                        "503": _error("Job store unavailable")}}},
            "/api/v1/openapi.json": {"get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3 document"}}}},
            "/metrics": {"get": {
                "summary": "Prometheus metrics (text format); see docs/OPERATIONS.md",
                "responses": {"200": {"description": "Prometheus text exposition format",
                                      "content": {"text/plain": {
                                          "schema": {"type": "string"}}}}}}},
            "/healthz": {"get": {"summary": "Liveness",
                                 "responses": {"200": {"description": "Process up"}}}},
            "/readyz": {"get": {"summary": "Readiness: Redis and at least one worker",
                                "responses": {"200": {"description": "Ready"},
                                              "503": {"description": "Not ready"}}}},
        },
    }
