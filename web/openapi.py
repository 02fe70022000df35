"""The OpenAPI 3 document of the job API (checked against the real routes by a test): the paths
written here, the component schemas generated from the typed models (web/api_schema.py), the
upload's content types and words from shared/formats."""

from __future__ import annotations

from shared import formats
from web.api_schema import components
from web.common import MAX_WAIT


def _error(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _ref(name: str) -> dict:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}


# Refused by gunicorn before the app sees it (a request line over 4094 bytes): not JSON.
TOO_LONG = {"description": "Request line too long (the server's limit)"}


# From the upload's answer to its first job's status, so stateful API testing can follow it.
LINKS = {"GetFirstJob": {"operationId": "getJob",
                         "parameters": {"job_id": "$response.body#/jobs/0/id"}},
         "DeleteFirstJob": {"operationId": "deleteJob",
                            "parameters": {"job_id": "$response.body#/jobs/0/id"}}}
# From a job's status to its explanation and feedback (both need a done job).
JOB_LINKS = {"GetExplanation": {"operationId": "getExplanation",
                                "parameters": {"job_id": "$response.body#/id"}},
             "PostFeedback": {"operationId": "postFeedback",
                              "parameters": {"job_id": "$response.body#/id"}}}


def spec(webhooks: bool = True) -> dict:
    """The OpenAPI document as a dict (webhooks False: callback_url is not offered, as on a
    service without DFD_WEBHOOK_SECRET)."""
    doc = _spec(_upload_types(), _upload_words(), components())
    if not webhooks:
        body = doc["paths"]["/api/v1/jobs"]["post"]["requestBody"]["content"]
        del body["multipart/form-data"]["schema"]["properties"]["callback_url"]
    return doc


def _upload_types() -> str:
    """What the multipart part `image` may carry (the content decides; the type is a hint)."""
    return ", ".join([*formats.media_types(), "application/octet-stream"])


def _upload_words() -> str:
    return (f"photos ({formats.listed('still', ', ')}) or videos "
            f"({formats.listed('video', ', ')}), checked by content; send image or url")


def _spec(upload_types: str, upload_words: str, schemas: dict) -> dict:
    return {
        "openapi": "3.0.3",
        "info": {"title": "Deepfake image detection API", "version": "1.0.0"},
        "servers": [{"url": "/"}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/api/v1/jobs": {"post": {
                "operationId": "submitJobs",
                "summary": "Submit images or videos (or one link) for detection",
                "security": [{}, {"bearer": []}],
                "parameters": [
                    {"name": "wait", "in": "query", "required": False,
                     "description": "hold up to this many seconds for every job to be final",
                     "schema": {"type": "number", "minimum": 0, "maximum": MAX_WAIT}},
                    {"name": "Idempotency-Key", "in": "header", "required": False,
                     "description": "a retry with the same key gets the first request's jobs",
                     "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,200}$"}}],
                "requestBody": {"required": True, "content": {"multipart/form-data": {
                    "encoding": {"image": {"contentType": upload_types}},
                    "schema": {"type": "object", "properties": {
                        "image": {"type": "array", "minItems": 1,
                                  "description": upload_words,
                                  "items": {"type": "string", "format": "binary"}},
                        "url": {"type": "string", "format": "uri",
                                "description": "a link to one photo or video, fetched by the "
                                               "server (https, public addresses, at most 3 "
                                               "redirects) and checked as an upload"},
                        "priority": {"type": "string", "enum": ["page", "api", "batch"],
                                     "description": "lower your own class (never raise it)"},
                        "explain": {"type": "string", "enum": ["0", "1", "true", "false"],
                                    "description": "1: the worker also makes the \"Why?\" "
                                                   "map of each face of a still, after the "
                                                   "verdict (GET .../explanation); without it "
                                                   "the upload is deleted with nothing to "
                                                   "explain later"},
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
                    "400": _error("Malformed request, image, video or link, bad wait "
                                  "parameter, or callback_url where webhooks are off"),
                    "401": _error("Unknown API key, or none where DFD_REQUIRE_API_KEY is on"),
                    "409": _error("The same Idempotency-Key is still being answered"),
                    "413": _error("Upload too large"),
                    "414": TOO_LONG,
                    "415": _error("Not an accepted image or video type"),
                    "422": _error("Idempotency-Key already used for a different request"),
                    "429": _error("Upload, video or refusal limit reached; see Retry-After"),
                    "502": _error("The link could not be fetched"),
                    "503": _error("Job store unavailable"),
                    "504": _error("The link was too slow")}}},
            "/api/v1/jobs/{job_id}": {"get": {
                "operationId": "getJob",
                "summary": "A job's status and result",
                "parameters": [
                    {"name": "job_id", "in": "path", "required": True,
                     "schema": {"type": "string"}},
                    {"name": "wait", "in": "query", "required": False,
                     "schema": {"type": "number", "minimum": 0, "maximum": MAX_WAIT}}],
                "responses": {"200": {"description": "The job", **_ref("Job"),
                                      "links": JOB_LINKS},
                              "400": _error("Bad wait parameter"),
                              "404": _error("Unknown or expired job id"),
                              "414": TOO_LONG,
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
            "/api/v1/jobs/{job_id}/explanation": {"get": {
                "operationId": "getExplanation",
                "summary": "Why this face: an occlusion map per face (uploads sent with "
                           "explain=1)",
                "description": "Made by the worker after the verdict is recorded (202 until "
                               "then), from the upload it keeps for that, and cached in the job "
                               "record; the upload itself is deleted when it is no longer "
                               "needed, so a job sent without explain=1 has none (410 "
                               "upload_gone), nor does a video. A reused result answers with the "
                               "explanation of the job that made it, if it has one.",
                "parameters": [
                    {"name": "job_id", "in": "path", "required": True,
                     "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "The explanation", **_ref("Explanation")},
                    "202": {"description": "The map is being made (the verdict never waits "
                                           "for it): ask again after Retry-After seconds",
                            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                            **_ref("ExplanationPending")},
                    "404": _error("Unknown or expired job id"),
                    "409": _error("The job is not done (code job_not_done)"),
                    "410": _error("No explanation: the upload was not sent with explain=1 "
                                  "and is deleted when the job is final (code upload_gone)"),
                    "414": TOO_LONG,
                    "429": _error("Status limit reached"),
                    "500": _error("The worker could not compute it (code explanation_failed)"),
                    "503": _error("Job store unavailable")}}},
            "/api/v1/jobs/{job_id}/feedback": {"post": {
                "operationId": "postFeedback",
                "summary": "Say the verdict is wrong: what the image really is",
                "security": [{}, {"bearer": []}],
                "parameters": [{"name": "job_id", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "requestBody": {"required": True, **_ref("FeedbackIn")},
                "responses": {
                    "201": {"description": "Recorded", **_ref("Feedback")},
                    "400": _error("Not a JSON object, bad label, note too long, unknown field"),
                    "404": _error("Unknown or expired job id"),
                    "409": _error("Job not done (job_not_done), or this client already sent "
                                  "feedback on it (feedback_exists)"),
                    "429": _error("Status limit reached"),
                    "503": _error("Job store unavailable")}}},
            "/api/v1/feedback": {"get": {
                "summary": "Export every feedback entry, oldest first (API key required)",
                "security": [{"bearer": []}],
                "parameters": [
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 10000}},
                    {"name": "offset", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 0, "maximum": 10**12}}],
                "responses": {
                    "200": {"description": "total, offset and the entries",
                            "content": {"application/json": {"schema": {
                                "type": "object", "properties": {
                                    "total": {"type": "integer"},
                                    "offset": {"type": "integer"},
                                    "feedback": {"type": "array", "items": {
                                        "$ref": "#/components/schemas/Feedback"}}}}}}},
                    "400": _error("Bad limit or offset"),
                    "401": _error("No or unknown API key"),
                    "414": TOO_LONG,
                    "429": _error("Status limit reached")}}},
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
