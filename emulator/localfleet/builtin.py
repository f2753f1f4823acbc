"""The built-in run commands a location lists (``locations/{location}/runCommands``)."""

from __future__ import annotations

from typing import Any

_SCHEMA = "http://schema.management.azure.com/schemas/2016-11-17/runcommands.json"
BUILTIN_COMMANDS: tuple[dict[str, Any], ...] = (
    {
        "$schema": _SCHEMA,
        "id": "RunPowerShellScript",
        "osType": "Windows",
        "label": "Executes a PowerShell script",
        "description": "Custom multiline PowerShell script should be defined in script property. "
        "Optional parameters can be set in parameters property.",
        "script": [
            "param(",
            "    [string]$arg1,",
            "    [string]$arg2",
            ")",
            "Write-Host This is a sample script with parameters $arg1 $arg2",
        ],
        "parameters": [
            {"name": "arg1", "type": "string", "defaultValue": "value1"},
            {"name": "arg2", "type": "string", "defaultValue": "value2"},
        ],
    },
    {
        "$schema": _SCHEMA,
        "id": "RunShellScript",
        "osType": "Linux",
        "label": "Executes a Linux shell script",
        "description": "Custom multiline shell script should be defined in script property. "
        "Optional parameters can be set in parameters property.",
        "script": ["echo This is a sample script with parameters $1 $2"],
        "parameters": [
            {"name": "arg1", "type": "string", "defaultValue": "value1"},
            {"name": "arg2", "type": "string", "defaultValue": "value2"},
        ],
    },
    {
        "$schema": _SCHEMA,
        "id": "ifconfig",
        "osType": "Linux",
        "label": "List network configuration",
        "description": "Get the configuration of all network interfaces.",
        "script": ["ifconfig"],
        "parameters": [],
    },
    {
        "$schema": _SCHEMA,
        "id": "IPConfig",
        "osType": "Windows",
        "label": "List IP configuration",
        "description": "Shows detailed information for the IP address, subnet mask and default gateway "
        "for each adapter bound to TCP/IP.",
        "script": ["ipconfig /all"],
        "parameters": [],
    },
)
