"""``ports.Queue`` on Azure Storage Queue (``azure-storage-queue``, imported lazily).

A message's text is ``{"jobId": "<job id>"}`` (see ``messages``), base64-encoded on the wire because the
Functions queue trigger base64-decodes what it reads. A delay is the message's initial visibility
timeout: the worker's "look again in N seconds" without a timer. Messages this adapter cannot read
(not base64, not the JSON above) go to ``<queue>-poison``, where the Functions host puts messages it gave
up on, instead of circling forever.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import re
import threading
from collections.abc import Mapping
from typing import Any

from ..errors import InvalidInput, RemediationError
from ..ports import LONGEST_QUEUE_DELAY_SECONDS, QueueMessage
from .messages import check_delay, job_id_from_message, message_body
from .table_support import translate_storage_error, with_http_environment

log = logging.getLogger(__name__)

MAX_BATCH = 32
_NAME_RULE = "3-63 lower-case letters, digits and single hyphens, starting and ending with a letter or digit"


def _check_queue_name(name: str) -> str:
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}", name):
        raise InvalidInput(f"queue name {name!r} is not valid: use {_NAME_RULE} (REMEDIATION_QUEUE_NAME)")
    return name


def decode_wire_text(content: str) -> str:
    """The message text from what the service returned: base64 as sent, plain text as a person typed it."""
    try:
        return base64.b64decode(content.encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        return content


class StorageQueue:
    """Give ``connection_string`` (Azurite: ``UseDevelopmentStorage=true``) or ``account_url`` (the queue
    service URI) with a ``credential``. The queue is created on first use if it is missing."""

    def __init__(
        self,
        queue_name: str,
        *,
        connection_string: str | None = None,
        account_url: str | None = None,
        credential: Any = None,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        if bool(connection_string) == bool(account_url):
            raise InvalidInput(
                "the storage queue needs either a storage connection string (REMEDIATION_STORAGE) or a "
                "queue service URI (REMEDIATION_STORAGE__queueServiceUri), not both and not neither"
            )
        if account_url and credential is None:
            raise InvalidInput(f"the queue service {account_url} needs a credential (a managed identity)")
        self.queue_name = _check_queue_name(queue_name)
        self._connection_string = connection_string
        self._account_url = account_url
        self._credential = credential
        self._options = dict(client_options or {})
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _client(self, name: str | None = None) -> Any:
        name = name or self.queue_name
        client = self._clients.get(name)
        if client is None:
            with self._lock:
                client = self._clients.get(name)
                if client is None:
                    # The poison queue gets the wire text as it was, so it is sent unencoded.
                    client = self._make_client(name, encode=name == self.queue_name)
                    self._clients[name] = client
        return client

    def _make_client(self, name: str, *, encode: bool) -> Any:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.queue import QueueClient, TextBase64EncodePolicy

        from ..azure import modelrace

        modelrace.guard("queue")

        # No decode policy: a message that is not base64 must not fail the whole batch (decode_wire_text).
        options = {**self._options}
        if encode:
            options["message_encode_policy"] = TextBase64EncodePolicy()

        def build(options: Mapping[str, Any]) -> Any:
            if self._connection_string:
                return QueueClient.from_connection_string(self._connection_string, name, **options)
            return QueueClient(str(self._account_url), name, credential=self._credential, **options)

        try:
            client = with_http_environment(build, options)
        except ValueError as exc:
            raise InvalidInput(f"the storage connection string is not valid: {exc}") from None
        try:
            client.create_queue()
        except ResourceExistsError:
            pass
        except Exception as exc:
            raise translate_storage_error(exc, f"storage queue: creating queue {name}") from exc
        return client

    def send(self, job_id: str, delay_seconds: float = 0) -> None:
        body = message_body(job_id)
        check_delay(delay_seconds)
        # Whole seconds on the wire; rounding up keeps "not before" true.
        delay = math.ceil(delay_seconds) or None
        try:
            self._client().send_message(body, visibility_timeout=delay)
        except RemediationError:
            raise
        except Exception as exc:
            raise translate_storage_error(exc, f"storage queue {self.queue_name}: send") from exc

    def receive(self, max_messages: int = MAX_BATCH, visibility_timeout: float = 300) -> list[QueueMessage]:
        if max_messages < 1:
            raise InvalidInput(f"max_messages {max_messages} must be at least 1")
        if not 1 <= visibility_timeout <= LONGEST_QUEUE_DELAY_SECONDS + 1:
            raise InvalidInput(f"visibility timeout {visibility_timeout} s must be between 1 s and 7 days")
        try:
            raw = list(
                self._client().receive_messages(
                    messages_per_page=min(max_messages, MAX_BATCH),
                    visibility_timeout=math.ceil(visibility_timeout),
                    max_messages=max_messages,
                )
            )
        except RemediationError:
            raise
        except Exception as exc:
            raise translate_storage_error(exc, f"storage queue {self.queue_name}: receive") from exc
        received: list[QueueMessage] = []
        for message in raw:
            text = decode_wire_text(str(message.content or ""))
            try:
                job_id = job_id_from_message(text)
            except InvalidInput as exc:
                self._quarantine(message, str(exc))
                continue
            received.append(QueueMessage(message.id, message.pop_receipt, job_id, message.dequeue_count or 1))
        return received

    def _quarantine(self, message: Any, reason: str) -> None:
        log.warning("moving unreadable message %s to %s-poison: %s", message.id, self.queue_name, reason)
        try:
            self._client(f"{self.queue_name}-poison").send_message(message.content)
            self._client().delete_message(message.id, message.pop_receipt)
        except Exception as exc:
            raise translate_storage_error(exc, f"storage queue {self.queue_name}: poison") from exc

    def delete(self, message: QueueMessage) -> None:
        """Remove a received message; one already gone or received again by another worker is left alone."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self._client().delete_message(message.id, message.pop_receipt)
        except ResourceNotFoundError:
            return
        except Exception as exc:
            raise translate_storage_error(exc, f"storage queue {self.queue_name}: delete") from exc

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
