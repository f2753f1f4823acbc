"""Names a person types, resolved to what the store keys on: job id prefixes and VM names.

A job can be named by its id, by a prefix of it (``job-bb00`` or ``bb00``), as long as one job matches;
a VM by its resource id or by its name. Several matches are an error that lists them, so the person can
pick one; nothing is guessed.
"""

from __future__ import annotations

from .errors import InvalidInput, NotFound
from .jobs import Job
from .ports import JobStore
from .resources import VmRef

MAX_SHOWN = 10


def find_job(store: JobStore | None, text: str) -> Job:
    """The one job whose id is ``text`` or starts with it."""
    wanted = text.strip().lower()
    if not wanted:
        raise InvalidInput("name a job (its id, or the start of it)")
    if store is None:
        raise NotFound(f"no job {text!r}: there are no jobs yet")
    if not wanted.startswith("job-"):
        wanted = "job-" + wanted
    try:
        return store.get(wanted)
    except (NotFound, InvalidInput):
        pass
    matches = [job for job in store.list() if job.id.startswith(wanted)]
    if not matches:
        raise NotFound(f"no job {text!r} (ids look like job-1a2b3c...; see remediate jobs)")
    if len(matches) > 1:
        shown = ", ".join(job.id for job in matches[:MAX_SHOWN])
        more = f" and {len(matches) - MAX_SHOWN} more" if len(matches) > MAX_SHOWN else ""
        raise InvalidInput(f"{text!r} matches {len(matches)} jobs: {shown}{more}; type more of the id")
    return matches[0]


def find_target(store: JobStore | None, text: str) -> str:
    """The VM resource id that ``text`` names: an id as it is, a name if one VM on record has it."""
    if VmRef.parse(text) is not None or text.startswith("/"):
        return text
    if store is None:
        return text
    name = text.strip().lower()
    ids: dict[str, str] = {}
    for job in store.list():
        if job.target.rstrip("/").rsplit("/", 1)[-1].lower() == name:
            ids.setdefault(job.target_key, job.target)
    if len(ids) > 1:
        raise InvalidInput(
            f"VM name {text!r} is ambiguous: " + ", ".join(sorted(ids.values())) + "; pass the resource id"
        )
    if ids:
        return next(iter(ids.values()))
    return text  # no job on record: the list comes back empty, which is the true answer
