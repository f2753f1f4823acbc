// Read access for the person or pipeline that deploys (azd's AZURE_PRINCIPAL_ID): the job records
// (Storage Table Data Reader) and the Event Grid dead-letters (Storage Blob Data Reader), both on the
// app's storage account, whose shared keys are off. Nothing that writes, nothing outside the account.
// principalType is left out on purpose: azd may deploy as a user or as a service principal, and ARM
// works out the type of an existing principal itself.

@description('Storage account name.')
param storageAccountName string

@description('Object id of the deployer.')
param principalId string

var roles = {
  tableDataReader: '76199698-9eea-4c19-bc75-cec21354c6b6'
  blobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
}

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource readers 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in items(roles): {
    name: guid(account.id, principalId, role.value)
    scope: account
    properties: {
      principalId: principalId
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.value)
      description: 'VM auto-remediation: the deployer reads job records and dead-lettered events.'
    }
  }
]
