"""The component schemas of the OpenAPI document (web/openapi.py): jobs, results and their
evidence (provenance, explanation, feedback)."""

from __future__ import annotations

from shared.schema import ASSESSMENTS, FACE_ASSESSMENTS, REASONS

SCHEMAS = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                       "retry_after": {"type": "integer"}}}}},
    "Stability": {"type": "object",
                  "required": ["checked", "variants", "p_fake_min", "p_fake_max", "spread",
                               "unstable"],
                  "description": "P(fake) over the crop and its benign variants (mirror, "
                                 "half-size and back, a shifted crop)",
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
        "stability": {"$ref": "#/components/schemas/Stability"},
        "assessment": {"type": "string", "enum": list(FACE_ASSESSMENTS),
                       "description": "this face's own assessment, against the image's bands "
                                      "(not_judged: too small, or one of a crowd)"}}},
    "Bands": {"type": "object", "description": "what the image was judged against: the card's "
              "bands, likely_fake_from raised for a photo of several faces",
              "properties": {"likely_real_below": {"type": "number"},
                             "likely_fake_from": {"type": "number"},
                             "faces_judged": {"type": "integer", "minimum": 0}}},
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
                   "prior_fake": {"type": "number", "minimum": 0, "maximum": 1,
                                  "description": "the share of fakes p_fake assumes (the "
                                                 "model card's served prior)"},
                   "bands": {"$ref": "#/components/schemas/Bands"},
                   "face_found": {"type": "boolean"},
                   "faces": {"type": "array", "items": {"$ref": "#/components/schemas/Face"}},
                   "image": {"type": "object", "properties": {"width": {"type": "integer"},
                                                              "height": {"type": "integer"}}},
                   "model": {"type": "object", "properties": {"name": {"type": "string"},
                                                              "version": {"type": "string"}}},
                   "provenance": {"$ref": "#/components/schemas/Provenance"}}},
    "Explanation": {"type": "object", "required": ["id", "status"], "properties": {
        "id": {"type": "string"}, "status": {"type": "string", "enum": ["done"]},
        "method": {"type": "object", "description": "how the map was made (occlusion grid)"},
        "model": {"type": "object"},
        "faces": {"type": "array", "items": {"type": "object", "properties": {
            "face": {"type": "integer", "nullable": True,
                     "description": "index into result.faces; null: the centre square"},
            "box": {"type": "array", "items": {"type": "number"}, "nullable": True},
            "crop_box": {"type": "array", "items": {"type": "integer"},
                         "description": "the square the model saw, in image pixels"},
            "p_fake": {"type": "number"},
            "largest": {"type": "object", "description": "the cell that changed P(fake) most "
                        "by size (row and column from 0), its delta, which way covering it moved "
                        "P(fake), and moved: false when no cell reaches 0.01"},
            "delta": {"type": "array", "items": {"type": "array", "items": {"type": "number"}},
                      "description": "rows of P(fake) minus P(fake) with that cell covered: "
                                     "where covering changed the score, not where a fake is"},
            "overlay_png": {"type": "string",
                            "description": "data: URL of a transparent PNG over crop_box"}}}}}},
    "FeedbackIn": {"type": "object", "required": ["label"], "additionalProperties": False,
                   "properties": {"label": {"type": "string", "enum": ["Real", "Fake"]},
                                  "note": {"type": "string", "maxLength": 500,
                                           "nullable": True}}},
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
