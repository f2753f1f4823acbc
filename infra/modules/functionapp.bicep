// The Function App on a Flex Consumption (FC1) plan, Python 3.11, running as a user-assigned identity.
// Every setting autoremediation/settings.py reads (except the local-only ones) is set here; the host's
// own storage connection (AzureWebJobsStorage) and the app's (REMEDIATION_STORAGE) are identity-based.

@description('Region of the plan and the app.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Flex Consumption plan name.')
param planName string

@description('Function App name (globally unique host name).')
param functionAppName string

@description('The azd service name the app is tagged with, so `azd deploy` finds it.')
param serviceName string

@description('Resource id of the app\'s user-assigned identity.')
param identityId string

@description('Client id of the app\'s user-assigned identity.')
param identityClientId string

@description('Blob endpoint of the storage account (host state).')
param blobEndpoint string

@description('Queue endpoint of the storage account.')
param queueEndpoint string

@description('Table endpoint of the storage account.')
param tableEndpoint string

@description('URL of the blob container the deployment package goes to.')
param deploymentContainerUrl string

@description('Application Insights connection string.')
param appInsightsConnectionString string

@description('Upper bound of instances Flex Consumption may scale out to (40 is the platform minimum).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory per instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Queue the dispatch worker listens to.')
param queueName string

@description('Prefix of the job-store tables.')
param tablePrefix string

@description('Comma-separated ARM scopes the app may act on (REMEDIATION_ALLOWED_SCOPES).')
param allowedScopes string

@description('Tag that opts a VM in, as name=value or a bare name (any value).')
param optInTag string

@description('Tag that takes a VM out of remediation whatever else it carries.')
param quarantineTag string

@description('true stops every dispatch (the kill switch).')
@allowed([
  'true'
  'false'
])
param killSwitch string

@description('true runs every script with DRY_RUN=1: it reports what it would change and changes nothing.')
@allowed([
  'true'
  'false'
])
param dryRun string

@description('managed (Managed Run Command: exit code, parallel runs) or action (classic Action Run Command).')
@allowed([
  'managed'
  'action'
])
param runCommandMode string

@description('Comma-separated NSG source prefixes whose management access (SSH/RDP) must stay open.')
param managementSources string

@description('Blob container collect-diagnostics uploads into (REMEDIATION_DIAGNOSTICS_CONTAINER).')
param diagnosticsContainer string = 'diagnostics'

@description('Path of Microsoft\'s Service Tags JSON deployed with the app (relative to the app root), so NSG rules naming service tags other than VirtualNetwork/Internet/AzureLoadBalancer can be evaluated; empty: such rules count as uncertain.')
param serviceTagsFile string = ''

@description('Minutes an approval request stays open.')
param approvalTtlMinutes string = '60'

@description('Failures within the breaker window that open the circuit breaker for a remediation.')
param breakerThreshold string = '3'

@description('Minutes of the circuit breaker window.')
param breakerWindowMinutes string = '60'

@description('Minutes an open circuit breaker stays open.')
param breakerOpenMinutes string = '60'

@description('Seconds a per-VM lease lasts before another worker may take it.')
param leaseSeconds string = '900'

@description('Seconds between polls of a running run command.')
param pollSeconds string = '15'

@description('Minutes after which a run command is declared timed out.')
param runDeadlineMinutes string = '90'

@description('Days finished jobs are kept.')
param retentionDays string = '90'

@description('Entra app role that may request and approve remediations.')
param operatorRole string = 'Remediation.Operator'

@description('Entra app role that may read remediations and the catalog.')
param readerRole string = 'Remediation.Reader'

@description('Entra scope of the operator API (identifier URI + /.default), published in /api/openapi for the remote CLI; empty without App Service authentication.')
param operatorApiScope string = ''

@description('Your own alert rules allowed to start remediations, besides the ones wiring.bicep deploys: comma-separated rule resource ids or globs inside one resource group (REMEDIATION_TRUSTED_ALERT_RULES).')
param trustedAlertRules string = ''

@description('Alerts that fired longer ago than this are refused; 30 covers Action Group retries (REMEDIATION_ALERT_MAX_AGE_MINUTES).')
param alertMaxAgeMinutes string = '30'

@description('Most jobs one alert or event may make; above it the signal is refused (REMEDIATION_MAX_JOBS_PER_SIGNAL).')
param maxJobsPerSignal string = '20'

@description('User state a failed or timed-out job leaves on its alert, besides a comment (REMEDIATION_ALERT_FAILURE_STATE).')
@allowed([
  'unchanged'
  'new'
  'acknowledged'
  'closed'
])
param alertFailureState string = 'unchanged'

// The alert rules wiring.bicep deploys into this resource group (named after the app) are trusted by
// default: their ids are known before they exist, so the app settings need not wait for the wiring.
var deployedAlertRules = [
  '${resourceGroup().id}/providers/Microsoft.Insights/scheduledQueryRules/disk-full-${functionAppName}'
  '${resourceGroup().id}/providers/Microsoft.Insights/activityLogAlerts/nsg-rule-write-${functionAppName}'
]
@secure()
@description('Comma-separated webhook URLs told when a job awaits approval, fails, times out, or a breaker opens; each may start with teams:, slack: or json:. Secret: the URLs carry their tokens.')
param notifyUrls string = ''

@description('true: the webhooks are also told when a job succeeds.')
@allowed([
  'true'
  'false'
])
param notifyOnSuccess string = 'false'

@description('Seconds a worker step may spend delivering one notification to every webhook, retries included.')
param notifyTimeoutSeconds string = '10'

var appSettings = {
  // Functions host storage, identity-based (no connection string, no key).
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: blobEndpoint
  AzureWebJobsStorage__queueServiceUri: queueEndpoint
  AzureWebJobsStorage__tableServiceUri: tableEndpoint
  // The app's queue (trigger connection REMEDIATION_STORAGE) and job tables, identity-based.
  REMEDIATION_STORAGE__credential: 'managedidentity'
  REMEDIATION_STORAGE__clientId: identityClientId
  REMEDIATION_STORAGE__queueServiceUri: queueEndpoint
  REMEDIATION_STORAGE__tableServiceUri: tableEndpoint
  // Diagnostics uploads: the app mints a user-delegation SAS for one blob of this container per run.
  REMEDIATION_STORAGE__blobServiceUri: blobEndpoint
  REMEDIATION_DIAGNOSTICS_CONTAINER: diagnosticsContainer
  REMEDIATION_JOB_STORE: 'table'
  REMEDIATION_QUEUE_NAME: queueName
  REMEDIATION_TABLE_PREFIX: tablePrefix
  // Safety controls.
  REMEDIATION_ALLOWED_SCOPES: allowedScopes
  REMEDIATION_OPT_IN_TAG: optInTag
  REMEDIATION_QUARANTINE_TAG: quarantineTag
  REMEDIATION_KILL_SWITCH: killSwitch
  REMEDIATION_DRY_RUN: dryRun
  REMEDIATION_RUN_COMMAND_MODE: runCommandMode
  REMEDIATION_MANAGEMENT_SOURCES: managementSources
  REMEDIATION_SERVICE_TAGS_FILE: serviceTagsFile
  REMEDIATION_APPROVAL_TTL_MINUTES: approvalTtlMinutes
  REMEDIATION_BREAKER_THRESHOLD: breakerThreshold
  REMEDIATION_BREAKER_WINDOW_MINUTES: breakerWindowMinutes
  REMEDIATION_BREAKER_OPEN_MINUTES: breakerOpenMinutes
  REMEDIATION_LEASE_SECONDS: leaseSeconds
  REMEDIATION_POLL_SECONDS: pollSeconds
  REMEDIATION_RUN_DEADLINE_MINUTES: runDeadlineMinutes
  REMEDIATION_RETENTION_DAYS: retentionDays
  REMEDIATION_OPERATOR_ROLE: operatorRole
  REMEDIATION_READER_ROLE: readerRole
  REMEDIATION_APP_SCOPE: operatorApiScope
  REMEDIATION_TRUSTED_ALERT_RULES: join(concat(deployedAlertRules, empty(trustedAlertRules) ? [] : split(trustedAlertRules, ',')), ',')
  REMEDIATION_ALERT_MAX_AGE_MINUTES: alertMaxAgeMinutes
  REMEDIATION_MAX_JOBS_PER_SIGNAL: maxJobsPerSignal
  REMEDIATION_ALERT_FAILURE_STATE: alertFailureState
  // Notifications (webhook URLs are secrets: a @secure() parameter, never an output).
  REMEDIATION_NOTIFY_URLS: notifyUrls
  REMEDIATION_NOTIFY_ON_SUCCESS: notifyOnSuccess
  REMEDIATION_NOTIFY_TIMEOUT_SECONDS: notifyTimeoutSeconds
  // ARM: the cloud's own endpoint, and the identity DefaultAzureCredential must pick.
  REMEDIATION_ARM_ENDPOINT: environment().resourceManager
  AZURE_CLIENT_ID: identityClientId
  AZURE_SUBSCRIPTION_ID: subscription().subscriptionId
  // The tenant whose tokens the alert webhook accepts (the Action Group's token `tid`).
  AZURE_TENANT_ID: tenant().tenantId
  // Telemetry with Entra authentication: the component has local auth turned off.
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: functionAppName
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    // Action Groups and Event Grid deliver over the public endpoint; the alert webhook needs a key, the
    // operator API an Entra token (authentication.bicep).
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      // No ftpsState: Flex Consumption has no FTP(S) and ARM rejects the property on it; publishing
      // credentials are off below (basicPublishingCredentialsPolicies).
      http20Enabled: true
      appSettings: [
        for setting in items(appSettings): {
          name: setting.key
          value: setting.value
        }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Publishing with user names and passwords is off: azd deploys with an Entra token.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

output functionAppId string = functionApp.id
output functionAppName string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
