"""The ``dispatch_worker`` queue trigger: one message advances one job (``worker.handle_message``); when
it ends a campaign job, the job that one releases is carried on in the same execution.

The host base64-decodes the message (host.json ``messageEncoding``) and renews its invisibility while
the step runs. An exception makes the host deliver the message again, up to ``maxDequeueCount``; on
that last delivery ``worker.handle`` ends the job as failed with the reason rather than letting the
message vanish into the poison queue. A message that names no job is dropped at once: retrying it
cannot help.
"""

from __future__ import annotations

import logging

import azure.functions as func

from ..errors import InvalidInput, NotFound
from . import runtime

bp = func.Blueprint()
log = logging.getLogger("autoremediation.functions.worker")
MAX_DEQUEUE_COUNT = 5  # host.json extensions.queues.maxDequeueCount


@bp.function_name("dispatch_worker")
@bp.queue_trigger(arg_name="msg", queue_name="%REMEDIATION_QUEUE_NAME%", connection="REMEDIATION_STORAGE")
def dispatch_worker(msg: func.QueueMessage) -> None:
    from ..store.messages import job_id_from_message
    from ..worker import handle_message

    try:
        job_id = job_id_from_message(msg.get_body())
    except InvalidInput as error:
        log.error("dropped queue message %s: %s", msg.id, error)
        return
    engine = runtime.services()
    try:
        step = handle_message(
            engine, job_id, dequeue_count=msg.dequeue_count or 1, max_dequeue=MAX_DEQUEUE_COUNT
        )
    except NotFound:
        # Deleted by retention or by hand while its message waited: nothing left to advance.
        log.warning("dropped queue message %s: job %s does not exist", msg.id, job_id)
        return
    log.info("job %s: %s%s", job_id, step.job.status, f" ({step.note})" if step.note else "")
