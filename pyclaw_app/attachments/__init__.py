"""Pictures, voice notes and documents people send: fetched through their channel, checked
by their bytes, stored under the data directory (never in SQLite) and given to the model.

``AttachmentPipeline`` is what the gateway hands the agent (``MediaSource``), and what
speaks voice replies; ``OutboundFiles`` stores the files the assistant sends;
``AttachmentsConfig`` is the YAML ``attachments:`` section.
"""

from pyclaw_app.attachments.config import AttachmentsConfig, SpeechConfig, VoiceConfig
from pyclaw_app.attachments.outbound import OutboundFiles
from pyclaw_app.attachments.pipeline import AttachmentPipeline, AttachmentSweeper, checked_type
from pyclaw_app.attachments.store import AttachmentFiles, FileRow
from pyclaw_app.attachments.types import ImageInput, MediaSource, PreparedMedia

__all__ = [
    "AttachmentFiles",
    "AttachmentPipeline",
    "AttachmentSweeper",
    "AttachmentsConfig",
    "FileRow",
    "ImageInput",
    "MediaSource",
    "OutboundFiles",
    "PreparedMedia",
    "SpeechConfig",
    "VoiceConfig",
    "checked_type",
]
