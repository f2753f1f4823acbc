"""What a notification says, and its body in each webhook format. Pure: no I/O.

A ``Notice`` holds the job's public fields (secret parameters redacted by the catalog, no script output)
and the sentence a person needs; ``body`` renders it as a Teams Workflows message with an Adaptive Card
attachment, a Slack Block Kit message, or generic JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..jobs import Job
from ..resources import VmRef

# What a notice is about; the generic JSON carries it as "event".
AWAITING_APPROVAL = "awaiting-approval"
APPROVAL_EXPIRING = "approval-expiring"
FAILED = "failed"
TIMED_OUT = "timed-out"
EXPIRED = "expired"
SUCCEEDED = "succeeded"
BREAKER_OPEN = "breaker-open"
KINDS = (AWAITING_APPROVAL, APPROVAL_EXPIRING, FAILED, TIMED_OUT, EXPIRED, SUCCEEDED, BREAKER_OPEN)

APPROVE_ROUTE = "POST /api/remediations/{id}/approve"
REJECT_ROUTE = "POST /api/remediations/{id}/reject"
CONSOLE_PAGE = "/api/console/jobs/{id}"  # the operator console's page for the job, with its decision buttons

_TITLES = {
    AWAITING_APPROVAL: "Remediation awaits approval",
    APPROVAL_EXPIRING: "Approval expires soon",
    FAILED: "Remediation failed",
    TIMED_OUT: "Remediation timed out",
    EXPIRED: "Approval expired: remediation not run",
    SUCCEEDED: "Remediation succeeded",
    BREAKER_OPEN: "Circuit breaker open",
}
# Block Kit limits: a section's text 3000 characters, a field 2000, at most 10 fields.
SLACK_TEXT_LIMIT = 3000
SLACK_FIELD_LIMIT = 2000
_TEAMS_COLOR = {SUCCEEDED: "Good", AWAITING_APPROVAL: "Accent", APPROVAL_EXPIRING: "Warning"}


@dataclass(frozen=True)
class Notice:
    kind: str
    job: Mapping[str, Any]
    summary: str
    how_to_approve: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return _TITLES[self.kind]


def public_job(job: Job, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a channel may see; ``parameters`` already redacted (``Catalog.redacted``)."""
    ref = VmRef.parse(job.target)
    last = job.history[-1] if job.history else None
    fields: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "remediation": job.remediation,
        "condition": job.condition,
        "target": job.target,
        "vmName": ref.name if ref else job.target.rstrip("/").rsplit("/", 1)[-1],
        "parameters": dict(parameters),
        "dryRun": job.dry_run,
        "requestedBy": job.requested_by,
        "reason": last.reason if last else job.reason,
        "signalSource": job.signal_source,
        "alertId": job.alert_id,
        "campaignId": job.campaign_id,
        "approvalExpiresAt": job.approval_expires_at,
        "createdAt": job.created_at,
        "updatedAt": job.updated_at,
        "exitCode": job.outcome.get("exitCode"),
        "verification": job.outcome.get("verification"),
    }
    return {k: v for k, v in fields.items() if v is not None and v != ""}


def approval_hints(job_id: str) -> tuple[str, ...]:
    return (
        f"Approve: {APPROVE_ROUTE.format(id=job_id)} (or `remediate approve {job_id}`)",
        f"Reject: {REJECT_ROUTE.format(id=job_id)} (or `remediate reject {job_id}`)",
        f"Review in the console: {CONSOLE_PAGE.format(id=job_id)}",
    )


def notice(kind: str, job: Job, parameters: Mapping[str, Any], **extra: Any) -> Notice:
    """The notice of ``kind`` for ``job``; approval notices say how to approve."""
    fields = public_job(job, parameters)
    name = fields["vmName"]
    reason = fields.get("reason", "")
    summaries = {
        AWAITING_APPROVAL: f"{job.remediation} on {name} waits for an operator's approval until "
        f"{job.approval_expires_at}: {reason}",
        APPROVAL_EXPIRING: f"{job.remediation} on {name} is still unapproved; the approval window closes at "
        f"{job.approval_expires_at}",
        FAILED: f"{job.remediation} on {name} failed: {reason}",
        TIMED_OUT: f"{job.remediation} on {name} timed out: {reason}",
        EXPIRED: f"{job.remediation} on {name} was not approved in time and did not run",
        SUCCEEDED: f"{job.remediation} on {name} succeeded: {reason}",
        BREAKER_OPEN: f"{job.remediation} failed {extra.get('failures', 'too many')} times within "
        f"{extra.get('window', 'the breaker window')}: it is not dispatched anywhere until "
        f"{extra.get('until', 'the breaker closes')}",
    }
    hints = approval_hints(job.id) if kind in (AWAITING_APPROVAL, APPROVAL_EXPIRING) else ()
    return Notice(kind, fields, summaries[kind], hints, dict(extra))


# -- formats ----------------------------------------------------------------------------------------


def _facts(notice: Notice) -> list[tuple[str, str]]:
    job = notice.job
    facts = [
        ("Job", str(job["id"])),
        ("Remediation", str(job["remediation"])),
        ("VM", str(job["vmName"])),
        ("Status", str(job["status"])),
    ]
    for label, key in (
        ("Campaign", "campaignId"),
        ("Exit code", "exitCode"),
        ("Approval until", "approvalExpiresAt"),
    ):
        if key in job:
            facts.append((label, str(job[key])))
    if job.get("dryRun"):
        facts.append(("Dry run", "yes"))
    return facts


def teams_body(notice: Notice) -> dict[str, Any]:
    """A Teams Workflows webhook message: ``type: message`` with one Adaptive Card attachment."""
    card_body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": notice.title,
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
            "color": _TEAMS_COLOR.get(notice.kind, "Attention"),
        },
        {"type": "TextBlock", "text": notice.summary, "wrap": True},
        {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in _facts(notice)]},
    ]
    card_body += [
        {"type": "TextBlock", "text": hint, "wrap": True, "isSubtle": True} for hint in notice.how_to_approve
    ]
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": card_body,
                },
            }
        ],
    }


def _mrkdwn(text: str) -> str:
    # Slack's mrkdwn treats &, < and > as control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(notice: Notice) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (the notification fallback) and Block Kit ``blocks``."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": notice.title}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _mrkdwn(notice.summary)[:SLACK_TEXT_LIMIT]}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*{k}*\n{_mrkdwn(v)}"[:SLACK_FIELD_LIMIT]}
                for k, v in _facts(notice)
            ][:10],
        },
    ]
    if notice.how_to_approve:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": _mrkdwn(hint)} for hint in notice.how_to_approve],
            }
        )
    return {"text": f"{notice.title}: {notice.summary}", "blocks": blocks}


def json_body(notice: Notice) -> dict[str, Any]:
    """Generic JSON: the event, the job's public fields, and how to approve when it applies."""
    body: dict[str, Any] = {
        "event": notice.kind,
        "title": notice.title,
        "summary": notice.summary,
        "job": dict(notice.job),
    }
    if notice.how_to_approve:
        job_id = notice.job["id"]
        body["approve"] = {
            "api": APPROVE_ROUTE.format(id=job_id),
            "cli": f"remediate approve {job_id}",
            "reject": REJECT_ROUTE.format(id=job_id),
            "console": CONSOLE_PAGE.format(id=job_id),
        }
    if notice.extra:
        body["details"] = dict(notice.extra)
    return body


def body(format_name: str, notice: Notice) -> dict[str, Any]:
    return {"teams": teams_body, "slack": slack_body, "json": json_body}[format_name](notice)
