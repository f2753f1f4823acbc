// The custom role the app acts with on target VMs and NSGs: exactly the ARM actions the adapters call
// (autoremediation/azure/permissions.py REQUIRED_ACTIONS; tests/infra compares the two sets).
targetScope = 'subscription'

@description('GUID of the role definition, computed by the caller from values known before deployment, so the assignments can name the role without this module\'s outputs.')
param roleDefinitionGuid string

@description('Role name; role names are unique per tenant, so it carries the environment name and part of the GUID.')
param roleName string

@description('Scopes (subscription or resource group ids) the role may be assigned at.')
param assignableScopes array

@description('The run command mode the app is deployed with: only the classic (action) mode calls runCommand/action.')
@allowed([
  'managed'
  'action'
])
param runCommandMode string = 'managed'

// autoremediation/azure/permissions.py CLASSIC_ACTIONS: granted only when the classic mode is deployed.
var classicActions = runCommandMode == 'action' ? [
  'Microsoft.Compute/virtualMachines/runCommand/action'
] : []

resource operatorRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: roleDefinitionGuid
  properties: {
    roleName: roleName
    description: 'Lets the VM auto-remediation app read VMs, run and clean up remediation run commands, and read and repair NSG rules, confirm alerts and read their rules, and close or comment alerts. Nothing else.'
    type: 'CustomRole'
    assignableScopes: assignableScopes
    permissions: [
      {
        actions: concat([
          'Microsoft.Compute/virtualMachines/read'
          'Microsoft.Compute/virtualMachines/runCommands/read'
          'Microsoft.Compute/virtualMachines/runCommands/write'
          'Microsoft.Compute/virtualMachines/runCommands/delete'
          'Microsoft.Compute/locations/operations/read'
          'Microsoft.Network/locations/operations/read'
          'Microsoft.Network/networkInterfaces/read'
          'Microsoft.Network/virtualNetworks/subnets/read'
          'Microsoft.Network/virtualNetworks/read'
          'Microsoft.Network/networkSecurityGroups/read'
          'Microsoft.Network/networkSecurityGroups/securityRules/read'
          'Microsoft.Network/networkSecurityGroups/securityRules/write'
          'Microsoft.AlertsManagement/alerts/read'
          'Microsoft.AlertsManagement/alerts/changestate/action'
          'Microsoft.Insights/scheduledQueryRules/read'
          'Microsoft.Insights/metricAlerts/read'
          'Microsoft.Insights/activityLogAlerts/read'
        ], classicActions)
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
  }
}

// The GUID, not the id: assignments in other subscriptions build the id in their own subscription.
output roleDefinitionGuid string = operatorRole.name
