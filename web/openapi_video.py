"""The OpenAPI parts for video results and job progress (issue 20), merged into the document by
web/openapi.py."""

from __future__ import annotations

_POINT = {"type": "object", "required": ["t", "p_fake"], "properties": {
    "t": {"type": "number", "description": "seconds from the start of the video"},
    "p_fake": {"type": "number", "minimum": 0, "maximum": 1}}}

VIDEO_SCHEMAS = {
    "Track": {
        "type": "object", "required": ["id", "frames", "p_fake"],
        "description": "One face followed through the sampled frames by box overlap.",
        "properties": {
            "id": {"type": "integer"},
            "frames": {"type": "integer", "description": "sampled frames the face is in"},
            "p_fake": {"type": "number", "minimum": 0, "maximum": 1,
                       "description": "the track's P(fake): the mean logit of its frames"},
            "assessment": {"type": "string", "enum": ["likely_real", "uncertain",
                                                      "likely_fake", "not_judged"],
                           "description": "the track's own assessment (as a face's)"},
            "first_t": {"type": "number"}, "last_t": {"type": "number"},
            "best": {"type": "object", "description": "the track's most suspicious frame",
                     "properties": {"t": {"type": "number"}, "p_fake": {"type": "number"},
                                    "box": {"type": "array", "items": {"type": "number"}}}},
            "scores": {"type": "array", "items": _POINT}}},
    "Video": {
        "type": "object",
        "required": ["duration_s", "frames_sampled", "frames_scored", "tracks", "timeline"],
        "properties": {
            "duration_s": {"type": "number", "nullable": True,
                           "description": "as the file declares it (null: not declared)"},
            "frames_sampled": {"type": "integer"},
            "frames_scored": {"type": "integer", "description": "sampled frames with a face"},
            "tracks": {"type": "array", "items": {"$ref": "#/components/schemas/Track"},
                       "description": "most suspicious first; the first decides the label"},
            "timeline": {"type": "array", "items": _POINT,
                         "description": "per sampled frame with a face: its highest P(fake)"}}},
    "Progress": {
        "type": "object", "required": ["frames_done", "frames_total"],
        "description": "A running video job: frames looked at so far, of those sampled.",
        "properties": {"frames_done": {"type": "integer"},
                       "frames_total": {"type": "integer"}}},
}

RESULT_FIELDS = {
    "media": {"type": "string", "enum": ["image", "video"]},
    "video": {"$ref": "#/components/schemas/Video"},
}
