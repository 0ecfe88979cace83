"""Raw media to TFRecords: the Beam-free media code (``pipeline.media``, ``pipeline.sources``)
that prediction shares, and around it the Apache Beam build (``pipeline.build``). See
ARCHITECTURE.md for what each module may import."""
import logging


class _NoApitoolsNotice(logging.Filter):
    """Drops the warning Beam logs on import when Google Cloud's optional client
    (``apitools``, installed by ``apache-beam[gcp]``) is absent. Nothing here needs it,
    and the line would otherwise open every command's output, ``--help`` included."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("apitools not found")


def hide_optional_gcp_notice():
    """Installs the filter above on the root logger (once); call before importing Beam."""
    root = logging.getLogger()
    if not any(isinstance(f, _NoApitoolsNotice) for f in root.filters):
        root.addFilter(_NoApitoolsNotice())


hide_optional_gcp_notice()
