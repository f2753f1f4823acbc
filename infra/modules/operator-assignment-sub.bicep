// Assigns the operator role to the app identity on one subscription.
targetScope = 'subscription'

@description('GUID of the operator role definition.')
param roleDefinitionGuid string

@description('Principal id of the app identity.')
param principalId string

@description('A stable key of the app identity known before deployment (its resource id): the assignment\'s name derives from it, not from the principal id.')
param principalKey string

var roleDefinitionId = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionGuid)

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, principalKey, roleDefinitionGuid)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: roleDefinitionId
    description: 'VM auto-remediation: run remediation scripts and repair NSG rules on opted-in VMs.'
  }
}
