"""Durable jobs, leases and campaigns (``ports.JobStore``) and the job queue (``ports.Queue``).

Adapters: ``sqlite`` (embedded default), ``table`` (Azure Table Storage), ``storage_queue`` (Azure Storage
Queue), ``memory_queue`` (in-process). ``factory`` picks them from the settings. Nothing is imported here,
so a function pays only for the adapter it uses.
"""
