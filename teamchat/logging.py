"""Bounded log records.

Clients choose much of what ends up in a log line (a frame that failed to
parse, a header, an exception's message), so every record is cut to a fixed
size before a handler writes it: one client cannot fill the disk or bury the
other lines.
"""

import logging


class TruncateFilter(logging.Filter):
    """Cut a record's message (and its traceback) to `max_chars` characters.

    Wired to every handler in settings.LOGGING. The record is changed in
    place, with a marker saying how much was left out.
    """

    def __init__(self, max_chars: int = 2000) -> None:
        super().__init__()
        self.max_chars = max_chars

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if len(message) > self.max_chars:
            record.msg = _cut(message, self.max_chars)
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and len(record.exc_text) > self.max_chars * 4:
            # A traceback has its cause at the end: keep both ends.
            half = self.max_chars * 2
            left_out = len(record.exc_text) - 2 * half
            record.exc_text = (
                f"{record.exc_text[:half]}\n… [{left_out} characters left out] …\n"
                f"{record.exc_text[-half:]}"
            )
        if record.stack_info and len(record.stack_info) > self.max_chars * 4:
            record.stack_info = _cut(record.stack_info, self.max_chars * 4)
        return True


def _cut(text: str, limit: int) -> str:
    return f"{text[:limit]}… [{len(text) - limit} more characters left out]"


class JsonFormatter(logging.Formatter):
    """One JSON object a line (LOG_FORMAT=json), for log collectors.

    `time` (UTC, ISO 8601), `level`, `logger`, `message`, `process`, and
    `exception` with the traceback when there is one. A message with a line
    break stays one line: JSON escapes it.
    """

    def format(self, record: logging.LogRecord) -> str:
        import json
        from datetime import UTC, datetime

        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False)
