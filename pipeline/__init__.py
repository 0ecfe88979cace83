"""Builds TFRecords from videos, frame folders, images and OpenPose keypoints with Apache Beam."""
import logging


class _NoApitoolsNotice(logging.Filter):
    """Drops the warning Beam logs on import when Google Cloud's optional client
    (``apitools``, installed by ``apache-beam[gcp]``) is absent. Nothing here needs it,
    and the line would otherwise open every command's output, ``--help`` included."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("apitools not found")


if not any(isinstance(f, _NoApitoolsNotice) for f in logging.getLogger().filters):
    logging.getLogger().addFilter(_NoApitoolsNotice())
