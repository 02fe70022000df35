"""The result's shape, for stills and videos, as typed models: shared.schema builds every result
through them, and the API's OpenAPI document is generated from them (web/api_schema.py).

A field that a result may leave out is `Maybe[...]` with a default of None: it is absent from
the JSON when not set (`dump()` leaves unset fields out), never null. `X | None` is a value that
may be null. Unknown fields are refused, so nothing reaches clients that is not declared here.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeAlias, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

T = TypeVar("T")
Maybe: TypeAlias = T | SkipJsonSchema[None]  # may be left out (never null)

Label = Literal["Real", "Fake"]
# The assessment beside the label (detector/assess.py decides it; the web only passes it on).
Assessment = Literal["likely_real", "uncertain", "likely_fake", "not_applicable"]
Reason = Literal["low_score", "middle_score", "high_score", "unstable", "no_face",
                 "face_too_small", "too_many_faces", "small_faces_skipped", "several_faces",
                 "short_track"]
# Each face's own assessment (it tags the face's box on the page); not_judged: too small, or
# one of a crowd.
FaceAssessment = Literal["likely_real", "uncertain", "likely_fake", "not_judged"]
Probability = Annotated[float, Field(ge=0, le=1)]
Box = Annotated[list[float], Field(min_length=4, max_length=4)]


class Part(BaseModel):
    """A part of a result: its fields exactly, no others."""

    model_config = ConfigDict(extra="forbid")

    def dump(self) -> dict:
        """The JSON-ready dict, without the fields left out."""
        return self.model_dump(mode="json", exclude_unset=True)


class Stability(Part):
    """P(fake) over the crop and its benign versions (the crop mirrored, and halved and enlarged
    again)."""

    checked: bool = Field(description="false: the versions were not scored: the face is far "
                                      "inside its band, between the bands (it reads uncertain "
                                      "whatever they score) or not judged (see docs/API.md)")
    variants: int = Field(ge=1)
    p_fake_min: float
    p_fake_max: float
    spread: float = Field(ge=0)
    unstable: bool = Field(description="the versions fall in different bands of the "
                                       "assessment (for a video's track, on both sides of the "
                                       "threshold)")


class Face(Part):
    """One face found in the image."""

    box: Box
    score: float
    p_fake: float
    stability: Stability
    assessment: FaceAssessment = Field(description="this face's own assessment, against the "
                                       "image's bands (not_judged: too small, or one of a crowd)")


class Bands(Part):
    """What the image was judged against: the card's bands, likely_fake_from raised for a photo
    of several faces."""

    likely_real_below: float
    likely_fake_from: float
    faces_judged: int = Field(ge=0)


class ImageSize(Part):
    """The decoded image's (or the video frames') size in pixels."""

    width: int
    height: int


class ModelRef(Part):
    """The model that made the verdict."""

    name: str
    version: str


class Signer(Part):
    """Who signed the Content Credentials."""

    issuer: str | None = None
    common_name: str | None = None


class Action(Part):
    """One c2pa.actions entry."""

    action: str
    digital_source_type: str | None = None
    software_agent: str | None = None


class C2PA(Part):
    """Content Credentials, read and validated offline (docs/API.md)."""

    present: bool
    state: Literal["absent", "trusted", "valid", "invalid", "unreadable", "not_checked"]
    claim_generator: Maybe[str | None] = None
    signer: Maybe[Signer] = None
    signer_trusted: Maybe[bool] = None
    signature_valid: Maybe[bool] = None
    hash_valid: Maybe[bool | None] = None
    failures: Maybe[list[str]] = None
    actions: Maybe[list[Action]] = None
    digital_source_type: Maybe[str | None] = None
    ai_generated: Maybe[bool] = None
    detail: Maybe[str] = None


class Marker(Part):
    """A metadata trace (provenance_markers.json), or metadata that could not be read."""

    source: Literal["png_text", "xmp", "exif", "jpeg", "metadata"]
    field: str
    kind: Literal["generator", "editor", "ai_generated", "ai_composite", "capture", "unreadable"]
    name: str | None
    value: str


class Provenance(Part):
    """What the file says about where it came from, read from the original bytes. Beside the
    verdict, never folded into p_fake; a missing credential proves nothing."""

    c2pa: C2PA
    markers: list[Marker]
    summary: str


class Point(Part):
    """A score at a moment of the video."""

    t: float = Field(description="seconds from the start of the video")
    p_fake: Probability


class BestFrame(Part):
    """The track's most suspicious frame."""

    t: float
    p_fake: float
    box: list[float]


class Track(Part):
    """One face followed through the sampled frames by box overlap."""

    id: int
    frames: int = Field(description="sampled frames the face is in")
    p_fake: Probability = Field(description="the track's P(fake): the mean logit of its frames")
    assessment: FaceAssessment = Field(description="the track's own assessment (as a face's)")
    first_t: float
    last_t: float
    best: BestFrame
    scores: list[Point]


class Video(Part):
    """What a video result adds: its sampled frames, face tracks and timeline."""

    duration_s: float | None = Field(description="as the file declares it (null: not declared)")
    frames_sampled: int
    frames_scored: int = Field(description="sampled frames with a face")
    tracks: list[Track] = Field(description="most suspicious first; the most suspicious judged "
                                            "one decides the label")
    timeline: list[Point] = Field(description="per sampled frame with a face: its highest "
                                              "P(fake)")


class Result(Part):
    """A done job's result, for a still or a video."""

    label: Label = Field(description="Fake when p_fake > threshold; read the assessment first")
    confidence: Probability = Field(description="the probability of the label: p_fake for Fake, "
                                                "1 - p_fake for Real (under 0.5 for a Fake "
                                                "between the threshold and 0.5)")
    p_fake: Probability = Field(description="the most suspicious judged face's (any face's "
                                            "when none is judged)")
    threshold: float
    prior_fake: Probability = Field(description="the share of fakes p_fake assumes (the model "
                                                "card's served prior)")
    face_found: bool
    assessment: Assessment = Field(description="what to take from the score; see docs/API.md")
    reasons: list[Reason]
    reason_text: str
    stability: Stability
    bands: Maybe[Bands] = None
    faces: list[Face]
    image: ImageSize
    model: ModelRef
    media: Literal["image", "video"]
    video: Maybe[Video] = None
    provenance: Maybe[Provenance] = None
