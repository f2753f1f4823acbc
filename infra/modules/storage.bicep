// The one storage account behind the app: Functions host state, the deployment package, the job queue,
// the job tables and Event Grid dead-letters. Shared keys are off, so every client authenticates with
// an Entra identity; the role assignments live in app-roles.bicep and here (dead-letter writer).

@description('Region of the storage account.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Storage account name (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param storageAccountName string

@description('Replication. Zone- or geo-redundant options keep job history through a zone or region outage.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param skuName string = 'Standard_LRS'

@description('Blob container Flex Consumption deploys the app package into.')
param deploymentContainerName string

@description('Blob container Event Grid writes undeliverable events into.')
param deadLetterContainerName string

@description('Queue the intake functions enqueue job ids on and the dispatch worker listens to.')
param queueName string

@description('Table names, each prefixed by tablePrefix: the job store creates any it lacks, these are the defaults.')
param tableNames array = [
  'jobs'
  'leases'
  'campaigns'
]

@description('Prefix of every job-store table (REMEDIATION_TABLE_PREFIX).')
param tablePrefix string

@description('Principal id of the Event Grid identity allowed to write dead-letters.')
param eventGridPrincipalId string

@description('A stable key of the Event Grid identity known before deployment (its resource id): the assignment\'s name derives from it.')
param eventGridPrincipalKey string

@description('Blob container the app\'s diagnostics uploads land in (REMEDIATION_DIAGNOSTICS_CONTAINER).')
param diagnosticsContainerName string = 'diagnostics'

@description('Principal id of the app identity: it mints short-lived upload SAS for the diagnostics container.')
param appPrincipalId string = ''

@description('A stable key of the app identity known before deployment (its resource id): the assignments\' names derive from it.')
param appPrincipalKey string = ''

@description('Days deleted blobs and containers stay recoverable.')
@minValue(1)
@maxValue(365)
param softDeleteDays int = 7

// Storage Blob Data Contributor: Event Grid only needs to write dead-letter blobs.
var blobDataContributorRoleId = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
// Storage Blob Delegator: generateUserDelegationKey only, the key that signs a user-delegation SAS.
var blobDelegatorRoleId = 'db58b8e5-c6ad-4a2a-8342-4190687cbf4a'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Where collect-diagnostics uploads, through a user-delegation SAS for one blob the app mints at dispatch.
resource diagnosticsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: diagnosticsContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource jobQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: queueName
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for table in tableNames: {
    parent: tableService
    name: '${tablePrefix}${table}'
  }
]

// Scoped to the dead-letter container, not the account: the Event Grid identity can touch nothing else.
resource deadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, eventGridPrincipalKey, blobDataContributorRoleId)
  scope: deadLetterContainer
  properties: {
    principalId: eventGridPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributorRoleId)
  }
}

// A user-delegation SAS can grant no more than its signer holds: Blob Data Contributor on the
// diagnostics container alone, and the delegation key action on the account (Storage Blob Delegator).
resource diagnosticsWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(appPrincipalKey)) {
  name: guid(diagnosticsContainer.id, appPrincipalKey, blobDataContributorRoleId)
  scope: diagnosticsContainer
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributorRoleId)
  }
}

resource diagnosticsDelegator 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(appPrincipalKey)) {
  name: guid(account.id, appPrincipalKey, blobDelegatorRoleId)
  scope: account
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDelegatorRoleId)
  }
}

output accountId string = account.id
output accountName string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
output tableEndpoint string = account.properties.primaryEndpoints.table
output deploymentContainerUrl string = '${account.properties.primaryEndpoints.blob}${deploymentContainer.name}'
output deadLetterContainerName string = deadLetterContainer.name
output diagnosticsContainerName string = diagnosticsContainer.name
output queueName string = jobQueue.name
