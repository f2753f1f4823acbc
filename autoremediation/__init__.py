"""Event-driven auto-remediation for Azure VMs.

Core modules (``signals``, ``routing``, ``policy``, ``jobs``, ``catalog``) are pure and never import
an Azure SDK; adapters under ``azure/``, ``store/`` and ``localfleet/`` import theirs lazily.
"""

__version__ = "0.1.0"
