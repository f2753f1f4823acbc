"""The queue message body, one format for every queue: the JSON object ``{"jobId": "<job id>"}``.

On Azure Storage the text is base64-encoded on the wire, which is what the Functions queue trigger
decodes; the trigger hands the worker the JSON text, and ``job_id_from_message`` reads it.
"""

from __future__ import annotations

import json

from ..errors import InvalidInput
from ..ports import LONGEST_QUEUE_DELAY_SECONDS
from .records import check_id, is_valid_id


def check_delay(delay_seconds: float) -> None:
    """A message's delay as every queue takes it: 0 s to Azure's longest (NaN refused too)."""
    if not 0 <= delay_seconds <= LONGEST_QUEUE_DELAY_SECONDS:
        raise InvalidInput(
            f"queue delay {delay_seconds} s must be between 0 and {LONGEST_QUEUE_DELAY_SECONDS} s"
        )


def message_body(job_id: str) -> str:
    return json.dumps({"jobId": check_id(job_id)}, separators=(",", ":"))


def job_id_from_message(text: str | bytes) -> str:
    """The job id in a message body; a bare job id is accepted too (an operator's hand-made message)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("queue message is not UTF-8 text") from None
    stripped = text.strip()
    if is_valid_id(stripped):
        return stripped
    try:
        data = json.loads(stripped)
    except ValueError:
        raise InvalidInput(f'queue message {_preview(stripped)} is not JSON {{"jobId": ...}}') from None
    job_id = data.get("jobId") if isinstance(data, dict) else None
    if not is_valid_id(job_id):
        raise InvalidInput(f'queue message {_preview(stripped)} has no valid "jobId"')
    return str(job_id)


def _preview(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")
