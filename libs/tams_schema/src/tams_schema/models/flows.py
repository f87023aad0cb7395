"""Sources, flows (every format) and profiles.

A flow's `format` selects its shape (a discriminated union), and each format's
`essence_parameters` forbids keys the spec does not define. A video flow needs `frame_rate`
unless `vfr` is true, and may not have one when it is.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, model_validator

from tams_schema.models.common import (
    ClosedModel,
    ContentFormat,
    Int64,
    MimeType,
    PositiveInt,
    Rational,
    StrictRational,
    Tags,
    TamsModel,
    Uuid,
)
from tams_schema.timerange import TimeRangeField

FlowStatus = Literal["awaiting_content", "ingesting", "replication_in_progress", "closed_complete"]


class CollectionItem(TamsModel):
    id: Uuid
    role: str | None = None


class AudioTrack(TamsModel):
    channel_numbers: list[Int64] | None = None
    channel_range: str | None = None


class ContainerMapping(TamsModel):
    track_index: Int64 | None = Field(default=None, ge=0)
    format_track_index: Int64 | None = Field(default=None, ge=0)
    audio_track: AudioTrack | None = None
    mp2ts_container: dict[str, Any] | None = None
    mxf_container: dict[str, Any] | None = None
    isobmff_container: dict[str, Any] | None = None


class FlowCollectionItem(CollectionItem):
    container_mapping: ContainerMapping | None = None


class Source(TamsModel):
    id: Uuid
    format: ContentFormat
    label: str | None = None
    description: str | None = None
    created_by: str | None = None
    updated_by: str | None = None
    created: str | None = None
    updated: str | None = None
    tags: Tags | None = None
    source_collection: list[CollectionItem] | None = None
    collected_by: list[Uuid] | None = None


class FlowCommon(TamsModel):
    id: Uuid
    source_id: Uuid
    generation: Int64 | None = Field(default=None, ge=0)
    label: str | None = None
    description: str | None = None
    created_by: str | None = None
    updated_by: str | None = None
    created: str | None = None
    metadata_updated: str | None = None
    segments_updated: str | None = None
    metadata_version: str | None = None
    tags: Tags | None = None
    read_only: bool | None = None
    max_bit_rate: Int64 | None = Field(default=None, ge=0)
    status: FlowStatus | None = None
    timerange: TimeRangeField | None = None
    flow_collection: list[FlowCollectionItem] | None = None
    collected_by: list[Uuid] | None = None


class Technical(TamsModel):
    codec: MimeType | None = None
    container: MimeType | None = None
    avg_bit_rate: Int64 | None = Field(default=None, ge=0)
    segment_duration: Rational | None = None
    container_mapping: ContainerMapping | None = None


class VideoUncParameters(TamsModel):
    unc_type: Literal[
        "planar", "YUYV", "UYVY", "AYUV", "v210", "v216", "RGB", "RGBx", "xRGB", "BGRx",
        "xBGR", "RGBA", "ARGB", "BGRA", "ABGR", "alpha",
    ]  # fmt: skip


class AudioUncParameters(TamsModel):
    unc_type: Literal["interleaved", "planar", "pairs"]


class AvcParameters(TamsModel):
    profile: Int64
    level: Int64
    flags: Int64


class VideoEssence(ClosedModel):
    frame_width: PositiveInt
    frame_height: PositiveInt
    frame_rate: Rational | None = None
    bit_depth: PositiveInt | None = None
    interlace_mode: (
        Literal["progressive", "interlaced_tff", "interlaced_bff", "interlaced_psf"] | None
    ) = None
    colorspace: Literal["BT601", "BT709", "BT2020", "BT2100"] | None = None
    transfer_characteristic: Literal["SDR", "HLG", "PQ"] | None = None
    aspect_ratio: StrictRational | None = None
    pixel_aspect_ratio: StrictRational | None = None
    component_type: Literal["YCbCr", "RGB"] | None = None
    horiz_chroma_subs: PositiveInt | None = None
    vert_chroma_subs: PositiveInt | None = None
    unc_parameters: VideoUncParameters | None = None
    avc_parameters: AvcParameters | None = None
    vfr: bool | None = None
    init_segments: bool | None = None

    @model_validator(mode="after")
    def frame_rate_unless_vfr(self) -> VideoEssence:
        if self.vfr and self.frame_rate is not None:
            raise ValueError("frame_rate is not allowed when vfr is true")
        if not self.vfr and self.frame_rate is None:
            raise ValueError("frame_rate is required unless vfr is true")
        return self


class CodecParameters(TamsModel):
    coded_frame_size: Int64 | None = None
    mp4_oti: Int64 | None = None


class AudioEssence(ClosedModel):
    sample_rate: PositiveInt
    channels: PositiveInt
    bit_depth: PositiveInt | None = None
    codec_parameters: CodecParameters | None = None
    unc_parameters: AudioUncParameters | None = None
    init_segments: bool | None = None


class ImageEssence(ClosedModel):
    frame_width: PositiveInt
    frame_height: PositiveInt
    aspect_ratio: StrictRational | None = None


class DataEssence(ClosedModel):
    data_type: str | None = None
    init_segments: bool | None = None


class MultiEssence(ClosedModel):
    init_segments: bool | None = None


class VideoFlow(FlowCommon, Technical):
    format: Literal["urn:x-nmos:format:video"]
    codec: MimeType
    essence_parameters: VideoEssence


class AudioFlow(FlowCommon, Technical):
    format: Literal["urn:x-nmos:format:audio"]
    codec: MimeType
    essence_parameters: AudioEssence


class ImageFlow(FlowCommon, Technical):
    format: Literal["urn:x-tam:format:image"]
    codec: MimeType
    essence_parameters: ImageEssence


class DataFlow(FlowCommon, Technical):
    format: Literal["urn:x-nmos:format:data"]
    codec: MimeType
    essence_parameters: DataEssence


class MultiFlow(FlowCommon, Technical):
    format: Literal["urn:x-nmos:format:multi"]
    essence_parameters: MultiEssence | None = None


Flow = Annotated[
    VideoFlow | AudioFlow | ImageFlow | DataFlow | MultiFlow, Field(discriminator="format")
]
FlowAdapter: TypeAdapter[VideoFlow | AudioFlow | ImageFlow | DataFlow | MultiFlow] = TypeAdapter(
    Flow
)


class ProfileLinkedFlow(FlowCommon):
    """A flow PUT that names a profile and so carries no technical metadata of its own."""

    profile_id: Uuid | Literal[""]


class VideoMetadata(Technical):
    format: Literal["urn:x-nmos:format:video"]
    codec: MimeType
    essence_parameters: VideoEssence


class AudioMetadata(Technical):
    format: Literal["urn:x-nmos:format:audio"]
    codec: MimeType
    essence_parameters: AudioEssence


class ImageMetadata(Technical):
    format: Literal["urn:x-tam:format:image"]
    codec: MimeType
    essence_parameters: ImageEssence


class DataMetadata(Technical):
    format: Literal["urn:x-nmos:format:data"]
    codec: MimeType
    essence_parameters: DataEssence


ProfileMetadata = Annotated[
    VideoMetadata | AudioMetadata | ImageMetadata | DataMetadata, Field(discriminator="format")
]


class Profile(TamsModel):
    id: Uuid
    flow_metadata: ProfileMetadata
    label: str | None = None
    description: str | None = None
    created_by: str | None = None
    created: str | None = None
    tags: Tags | None = None
