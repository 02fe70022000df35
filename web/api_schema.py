"""The API's JSON beside the result (jobs, errors, explanations, feedback) as typed models, and
the OpenAPI 3.0 component schemas generated from them and from shared/result.py's result."""

from __future__ import annotations

import copy
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema

from shared.result import Label, Maybe, Result

_DATE_TIME: JsonDict = {"format": "date-time"}


class ErrorBody(BaseModel):
    """What went wrong: a stable code and words; retry_after with a 429."""

    code: str
    message: str
    retry_after: Maybe[int] = None


class Error(BaseModel):
    """Every error the API answers with."""

    error: ErrorBody


class Progress(BaseModel):
    """A running video job: frames looked at so far, of those sampled."""

    frames_done: int
    frames_total: int


class Job(BaseModel):
    """A job's status, and its result when done or its error when failed."""

    id: str = Field(pattern="^[0-9a-f]{32}$")
    status: Literal["queued", "running", "done", "failed"]
    created_at: str = Field(json_schema_extra=_DATE_TIME)
    started_at: Maybe[str | None] = Field(None, json_schema_extra=_DATE_TIME)
    finished_at: Maybe[str | None] = Field(None, json_schema_extra=_DATE_TIME)
    age_s: Maybe[float] = None
    stale: Maybe[bool] = None
    reused: Maybe[bool] = None
    progress: Maybe[Progress] = None
    result: Maybe[Result] = None
    error: Maybe[str] = None


class Queued(BaseModel):
    """One job of an upload's answer, as queued."""

    id: Maybe[str] = None
    status: Maybe[str] = None
    filename: Maybe[str] = None
    location: Maybe[str] = None
    created_at: Maybe[str] = None


class Accepted(BaseModel):
    """The answer to an upload: one job per file."""

    jobs: list[Queued]


class Answered(BaseModel):
    """The answer to an upload with ?wait= whose jobs are all final."""

    jobs: list[Job]  # each with the filename and location of Queued (_components)


class ExplainedFace(BaseModel):
    """One face's occlusion map."""

    face: Maybe[int | None] = Field(None, description="index into result.faces; null: the "
                                                      "centre square")
    box: Maybe[list[float] | None] = None
    crop_box: Maybe[list[int]] = Field(None, description="the square the model saw, in image "
                                                         "pixels")
    p_fake: Maybe[float] = None
    largest: Maybe[dict] = Field(None, description="the cell that changed P(fake) most by size "
                                 "(row and column from 0), its delta, which way covering it "
                                 "moved P(fake), and moved: false when no cell reaches 0.01")
    delta: Maybe[list[list[float]]] = Field(None, description="rows of P(fake) minus P(fake) "
                                            "with that cell covered: where covering changed the "
                                            "score, not where a fake is")
    overlay_png: Maybe[str] = Field(None, description="data: URL of a transparent PNG over "
                                                      "crop_box")


class Explanation(BaseModel):
    """Why this face: an occlusion map per face."""

    id: str
    status: Literal["done"]
    method: Maybe[dict] = Field(None, description="how the map was made (occlusion grid)")
    model: Maybe[dict] = None
    faces: Maybe[list[ExplainedFace]] = None


class ExplanationPending(BaseModel):
    """The "Why?" map is still being made: it follows the verdict (a follow-up task)."""

    id: str
    status: Literal["pending"]
    retry_after: int = Field(description="seconds to wait before asking again (as Retry-After)")


class FeedbackIn(BaseModel):
    """What a client says the image really is."""

    model_config = ConfigDict(extra="forbid")

    label: Label
    note: Maybe[str | None] = Field(None, max_length=500)


class Verdict(BaseModel):
    """The verdict the feedback disputes."""

    label: Maybe[str] = None
    p_fake: Maybe[float] = None
    assessment: Maybe[str] = None


class ModelName(BaseModel):
    """The model of the disputed verdict."""

    name: Maybe[str] = None
    version: Maybe[str] = None


class Feedback(BaseModel):
    """A recorded feedback entry."""

    job_id: Maybe[str] = None
    label: Maybe[Label] = None
    note: Maybe[str] = None
    verdict: Maybe[Verdict] = None
    model: Maybe[ModelName] = None
    client: Maybe[str] = Field(None, description="pseudonym (export only)")
    created_at: Maybe[float] = None


class OpenAPI30(GenerateJsonSchema):
    """JSON Schema as OpenAPI 3.0 reads it: nullable instead of a null type, enum instead of
    const, no titles and no defaults (the document never had them)."""

    def nullable_schema(self, schema):
        inner = self.generate_inner(schema["schema"])
        return {"allOf": [inner], "nullable": True} if "$ref" in inner else \
            {**inner, "nullable": True}

    def literal_schema(self, schema):
        out = super().literal_schema(schema)
        if "const" in out:
            out["enum"] = [out.pop("const")]
        return out

    def default_schema(self, schema):
        return self.generate_inner(schema["schema"])

    def field_title_should_be_set(self, schema) -> bool:
        return False


@cache
def _components() -> dict:
    answers: list[type[BaseModel]] = [Error, Job, Accepted, Answered, Explanation,
                                      ExplanationPending, Feedback, Result]
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(m, "serialization") for m in answers]
    _, doc = models_json_schema([*models, (FeedbackIn, "validation")],
                                ref_template="#/components/schemas/{model}",
                                schema_generator=OpenAPI30)
    schemas = doc["$defs"]
    for name, schema in schemas.items():
        schema.pop("title", None)
        # Only a request body is closed; answers may gain fields (the models refuse unknown
        # fields when they build a result, which is another matter).
        if name != "FeedbackIn":
            schema.pop("additionalProperties", None)
    answered = schemas["Answered"]["properties"]["jobs"]
    answered["items"] = {"allOf": [answered["items"], {"type": "object", "properties": {
        "filename": {"type": "string"}, "location": {"type": "string"}}}]}
    return schemas


def components() -> dict:
    """The component schemas of the OpenAPI document, by name (a copy: the document is built
    anew for each request, and nothing may change the generated one)."""
    return copy.deepcopy(_components())
