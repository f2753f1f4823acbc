// Data-plane roles of the app identity, each at the narrowest scope the Functions host and the app accept.
//   Storage Blob Data Owner       account: the host keeps leases, keys and timer state in blobs, and Flex
//                                 Consumption reads the deployment package with this identity.
//   Storage Queue Data Contributor account: the queue trigger reads, deletes and re-enqueues job messages
//                                 and creates its poison queue next to the job queue.
//   Storage Table Data Contributor account: the job store (jobs, leases, campaigns) and the host's
//                                 diagnostic-event tables, whose names change every month.
//   Monitoring Metrics Publisher  Application Insights: telemetry with Entra authentication.
// No management-plane role on any of these resources.

@description('Storage account name.')
param storageAccountName string

@description('Application Insights component name.')
param appInsightsName string

@description('Principal id of the app identity.')
param principalId string

@description('A stable key of the app identity known before deployment (its resource id): assignment names derive from it, so what-if can name them before the identity exists.')
param principalKey string

var roles = {
  blobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  queueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  tableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

var storageRoles = [
  roles.blobDataOwner
  roles.queueDataContributor
  roles.tableDataContributor
]

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource storageAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in storageRoles: {
    name: guid(account.id, principalKey, roleId)
    scope: account
    properties: {
      principalId: principalId
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    }
  }
]

resource telemetryAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalKey, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}
