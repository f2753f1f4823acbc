"""The ARM actions the adapters call: the custom role in ``infra/`` grants exactly these.

Keep this list in step with the SDK operations used in ``compute.py``, ``network.py`` and
``alerts.py``; a test compares it with the role definition, and another maps every ARM call the adapters
make against the local emulator to one of these actions. Long-running operations are polled on
``.../locations/{location}/operations/{id}``, which needs the provider's ``locations/operations/read``.
"""

REQUIRED_ACTIONS: tuple[str, ...] = (
    "Microsoft.Compute/virtualMachines/read",
    "Microsoft.Compute/virtualMachines/runCommands/read",
    "Microsoft.Compute/virtualMachines/runCommands/write",
    "Microsoft.Compute/virtualMachines/runCommands/delete",
    "Microsoft.Compute/locations/operations/read",
    "Microsoft.Network/locations/operations/read",
    "Microsoft.Network/networkInterfaces/read",
    "Microsoft.Network/virtualNetworks/subnets/read",
    # The VNet read resolves the VirtualNetwork service tag: address space and the peerings listed
    # inline with their remoteAddressSpace (the peers themselves are never read).
    "Microsoft.Network/virtualNetworks/read",
    "Microsoft.Network/networkSecurityGroups/read",
    "Microsoft.Network/networkSecurityGroups/securityRules/read",
    "Microsoft.Network/networkSecurityGroups/securityRules/write",
    # alerts.py: confirm an alert, read its rule (one kind per rule type), close or comment it.
    "Microsoft.AlertsManagement/alerts/read",
    "Microsoft.AlertsManagement/alerts/changestate/action",
    "Microsoft.Insights/scheduledQueryRules/read",
    "Microsoft.Insights/metricAlerts/read",
    "Microsoft.Insights/activityLogAlerts/read",
)

# Only the classic (Action Run Command) mode calls these: the role grants them only when that mode is
# deployed (``runCommandMode: 'action'``).
CLASSIC_ACTIONS: tuple[str, ...] = ("Microsoft.Compute/virtualMachines/runCommand/action",)


def required_actions(run_command_mode: str) -> tuple[str, ...]:
    """The ARM actions the adapters call in a run command mode (``managed`` or ``action``)."""
    return REQUIRED_ACTIONS + (CLASSIC_ACTIONS if run_command_mode == "action" else ())
