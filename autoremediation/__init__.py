"""Event-driven auto-remediation for Azure VMs.

Core modules (``signals``, ``routing``, ``policy``, ``jobs``, ``catalog``) are pure and never import
an Azure SDK; adapters under ``azure/`` and ``store/`` import theirs lazily. The local ARM
emulator is a package of its own (``localfleet``, in ``emulator/``), never imported from here.
"""

__version__ = "0.1.0"
