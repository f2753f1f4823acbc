// Assigns the operator role to the app identity on one subscription.
targetScope = 'subscription'

@description('GUID of the operator role definition.')
param roleDefinitionGuid string

@description('Principal id of the app identity.')
param principalId string

var roleDefinitionId = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionGuid)

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, principalId, roleDefinitionGuid)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: roleDefinitionId
    description: 'VM auto-remediation: run remediation scripts and repair NSG rules on opted-in VMs.'
  }
}
