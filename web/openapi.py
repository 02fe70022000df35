"""The OpenAPI 3 document of the job API (checked against the real routes by a test)."""

from __future__ import annotations

from shared.schema import ASSESSMENTS, REASONS


def _error(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _ref(name: str) -> dict:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}


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
    "Provenance": {
        "type": "object", "required": ["c2pa", "markers", "summary"],
        "description": "What the file says about where it came from, read from the original "
                       "bytes. Beside the verdict, never folded into p_fake; a missing "
                       "credential proves nothing.",
        "properties": {
            "c2pa": {"type": "object", "required": ["present", "state"], "properties": {
                "present": {"type": "boolean"},
                "state": {"type": "string", "enum": ["absent", "trusted", "valid", "invalid",
                                                     "unreadable", "not_checked"]},
                "claim_generator": {"type": "string", "nullable": True},
                "signer": {"type": "object", "properties": {
                    "issuer": {"type": "string", "nullable": True},
                    "common_name": {"type": "string", "nullable": True}}},
                "signer_trusted": {"type": "boolean"},
                "signature_valid": {"type": "boolean"},
                "hash_valid": {"type": "boolean", "nullable": True},
                "failures": {"type": "array", "items": {"type": "string"}},
                "actions": {"type": "array", "items": {"type": "object", "properties": {
                    "action": {"type": "string"},
                    "digital_source_type": {"type": "string", "nullable": True},
                    "software_agent": {"type": "string", "nullable": True}}}},
                "digital_source_type": {"type": "string", "nullable": True},
                "ai_generated": {"type": "boolean"},
                "detail": {"type": "string"}}},
            "markers": {"type": "array", "items": {"type": "object", "properties": {
                "source": {"type": "string", "enum": ["png_text", "xmp", "exif", "jpeg"]},
                "field": {"type": "string"},
                "kind": {"type": "string", "enum": ["generator", "editor", "ai_generated",
                                                    "ai_composite", "capture", "unreadable"]},
                "name": {"type": "string", "nullable": True},
                "value": {"type": "string"}}}},
            "summary": {"type": "string"}}},
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
                                                              "version": {"type": "string"}}},
                   "provenance": {"$ref": "#/components/schemas/Provenance"}}},
    "Explanation": {"type": "object", "required": ["id", "status"], "properties": {
        "id": {"type": "string"}, "status": {"type": "string", "enum": ["done", "pending"]},
        "method": {"type": "object", "description": "how the map was made (occlusion grid)"},
        "model": {"type": "object"},
        "faces": {"type": "array", "items": {"type": "object", "properties": {
            "face": {"type": "integer", "nullable": True,
                     "description": "index into result.faces; null: the centre square"},
            "box": {"type": "array", "items": {"type": "number"}, "nullable": True},
            "crop_box": {"type": "array", "items": {"type": "integer"},
                         "description": "the square the model saw, in image pixels"},
            "p_fake": {"type": "number"},
            "delta": {"type": "array", "items": {"type": "array", "items": {"type": "number"}},
                      "description": "rows of P(fake) minus P(fake) with that cell covered: "
                                     "where covering changed the score, not where a fake is"},
            "overlay_png": {"type": "string",
                            "description": "data: URL of a transparent PNG over crop_box"}}}}}},
    "FeedbackIn": {"type": "object", "required": ["label"], "additionalProperties": False,
                   "properties": {"label": {"type": "string", "enum": ["Real", "Fake"]},
                                  "note": {"type": "string", "maxLength": 500}}},
    "Feedback": {"type": "object", "properties": {
        "job_id": {"type": "string"}, "label": {"type": "string", "enum": ["Real", "Fake"]},
        "note": {"type": "string"},
        "verdict": {"type": "object", "properties": {
            "label": {"type": "string"}, "p_fake": {"type": "number"},
            "assessment": {"type": "string"}}},
        "model": {"type": "object", "properties": {"name": {"type": "string"},
                                                   "version": {"type": "string"}}},
        "client": {"type": "string", "description": "pseudonym (export only)"},
        "created_at": {"type": "number"}}},
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
                "summary": "Submit one or more images for detection",
                "security": [{}, {"bearer": []}],
                "parameters": [
                    {"name": "wait", "in": "query", "required": False,
                     "description": "hold up to this many seconds for every job to be final",
                     "schema": {"type": "number", "minimum": 0, "maximum": 10}}],
                "requestBody": {"required": True, "content": {"multipart/form-data": {
                    "schema": {"type": "object", "required": ["image"], "properties": {
                        "image": {"type": "array",
                                  "items": {"type": "string", "format": "binary"}}}}}}},
                "responses": {
                    "200": {"description": "With ?wait=: every job final, results included",
                            "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/Answered"}}}},
                    "202": {"description": "Queued (with ?wait=: not all final in time)",
                            "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/Accepted"}}}},
                    "400": _error("Malformed request or image, or bad wait parameter"),
                    "401": _error("Unknown API key"),
                    "413": _error("Upload too large"),
                    "415": _error("Not a JPEG or PNG image"),
                    "429": _error("Upload limit reached; see Retry-After"),
                    "503": _error("Job store unavailable")}}},
            "/api/v1/jobs/{job_id}": {"get": {
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
                              "503": _error("Job store unavailable")}}},
            "/api/v1/jobs/{job_id}/explanation": {"get": {
                "summary": "Why this face: an occlusion map per face, computed on request",
                "parameters": [
                    {"name": "job_id", "in": "path", "required": True,
                     "schema": {"type": "string"}},
                    {"name": "wait", "in": "query", "required": False,
                     "description": "hold up to this many seconds for the worker (default 10)",
                     "schema": {"type": "number", "minimum": 0, "maximum": 10}}],
                "responses": {
                    "200": {"description": "The explanation (cached after the first request)",
                            **_ref("Explanation")},
                    "202": {"description": "Still being computed; ask again (Retry-After)",
                            **_ref("Explanation")},
                    "400": _error("Bad wait parameter"),
                    "404": _error("Unknown or expired job id"),
                    "409": _error("The job is not done (code job_not_done)"),
                    "410": _error("The upload is no longer kept (code upload_gone)"),
                    "429": _error("Status limit reached"),
                    "503": _error("Job store unavailable")}}},
            "/api/v1/jobs/{job_id}/feedback": {"post": {
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
                     "schema": {"type": "integer", "minimum": 0}}],
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
                    "429": _error("Status limit reached")}}},
            "/api/v1/openapi.json": {"get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3 document"}}}},
            "/healthz": {"get": {"summary": "Liveness",
                                 "responses": {"200": {"description": "Process up"}}}},
            "/readyz": {"get": {"summary": "Readiness: Redis and at least one worker",
                                "responses": {"200": {"description": "Ready"},
                                              "503": {"description": "Not ready"}}}},
        },
    }
