// Connects Azure Monitor and Event Grid to the deployed functions. Run after the code is deployed
// (the azd postdeploy hook does it): the Action Group needs the `alerts` function's key and Event Grid
// validates that the `resource_events` function exists when the subscription is created.
//   az deployment group create -g <rg> -f infra/wiring.bicep -p functionAppName=... (see infra/README.md)
targetScope = 'resourceGroup'

@description('Region of the log search alert rule.')
param location string = resourceGroup().location

@description('Name of the Function App (FUNCTION_APP_NAME).')
param functionAppName string

@description('Name of the storage account holding the dead-letter container (STORAGE_ACCOUNT_NAME).')
param storageAccountName string

@description('Dead-letter blob container (DEADLETTER_CONTAINER_NAME).')
param deadLetterContainerName string

@description('Event Grid system topic on the subscription (EVENTGRID_SYSTEM_TOPIC_NAME).')
param systemTopicName string

@description('Resource id of the identity Event Grid dead-letters with (EVENTGRID_IDENTITY_ID).')
param eventGridIdentityId string

@description('Comma-separated target scopes (REMEDIATION_TARGET_SCOPES): only events under them are delivered.')
@minLength(1)
param targetScopes string

@description('Log Analytics workspace the VMs send VM insights / Azure Monitor Agent data to.')
param vmInsightsWorkspaceId string

@description('Deploy the sample alert rules (disk free space, failed services, time sync, NSG rule writes).')
param deploySampleAlerts bool = true

@description('Deploy the sample high-CPU alert that asks for diagnostics. Off by default: the diagnostics upload URL is a secret an alert never carries, so until the app makes one itself the app only records the plan for this alert.')
param deployDiagnosticsAlert bool = false

@description('Average CPU percentage over which the high-CPU (collect diagnostics) alert fires.')
@minValue(50)
@maxValue(100)
param cpuThresholdPercent int = 95

@description('Free disk space, in percent, under which the disk-full alert fires.')
@minValue(1)
@maxValue(50)
param diskFreeThresholdPercent int = 10

@description('Tags applied to every resource.')
param tags object = {}

// Entra authentication of the Action Group (its "secure webhook"): the default wherever the app has an
// app registration behind App Service authentication. The Action Group then gets a token for that app
// as Microsoft's Action Groups application (appid 461e8683-5575-4561-ac7f-899cc907d62a) and sends it as
// a bearer token; the app accepts alerts only with it (autoremediation/blueprints/webhook_auth.py).
// Empty: the function key alone, the documented weaker fallback.
@description('Object id of the Entra app registration that App Service authentication protects the app with (ALERT_WEBHOOK_APP_OBJECT_ID). Its app role ActionGroupsSecureWebhook must be assigned to the Action Groups service principal. Empty: function key only.')
param alertWebhookAppObjectId string = ''

@description('Application ID URI of that app registration (ALERT_WEBHOOK_APP_ID_URI): the audience of the Action Group\'s token, one of the allowed audiences of App Service authentication.')
param alertWebhookIdentifierUri string = ''

@description('Tenant of that app registration.')
param alertWebhookTenantId string = tenant().tenantId

// Function names registered by function_app.py; tests/infra checks them against the app.
var alertsFunctionName = 'alerts'
var resourceEventsFunctionName = 'resource_events'

// Both writes change what an NSG lets through; the event carries no rule body, the app reads the NSG.
var nsgWriteOperations = [
  'Microsoft.Network/networkSecurityGroups/write'
  'Microsoft.Network/networkSecurityGroups/securityRules/write'
]

var scopeList = split(replace(targetScopes, ' ', ''), ',')
// A trailing slash keeps /resourceGroups/rg1 from matching /resourceGroups/rg10; an empty entry must
// not become '/', which would match every subject.
var subjectPrefixes = [for entry in scopeList: empty(entry) ? '/-' : (endsWith(entry, '/') ? entry : '${entry}/')]

// Event Grid takes at most 25 values across all advanced filters of one event subscription. The
// operation filter spends length(nsgWriteOperations) of them; the subject prefixes fill the rest, so
// more scopes than that are split over several event subscriptions (the first keeps its old name).
var maxFilterValues = 25
var prefixesPerSubscription = maxFilterValues - length(nsgWriteOperations)
var subscriptionCount = (length(subjectPrefixes) + prefixesPerSubscription - 1) / prefixesPerSubscription

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName

  resource alertsFunction 'functions' existing = {
    name: alertsFunctionName
  }
}

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

var useEntraWebhook = !empty(alertWebhookAppObjectId)

// A function-level key: it opens the `alerts` function only, not the whole app. The host asks for it on
// either receiver; with Entra authentication it is the second factor, not the only one.
var alertsUrl = 'https://${functionApp.properties.defaultHostName}/api/alerts?code=${functionApp::alertsFunction.listKeys().default}'

// The default: a webhook receiver that authenticates with Microsoft Entra ID.
var entraWebhookReceiver = {
  name: 'remediation-alerts'
  serviceUri: alertsUrl
  useCommonAlertSchema: true
  useAadAuth: true
  objectId: alertWebhookAppObjectId
  identifierUri: alertWebhookIdentifierUri
  tenantId: alertWebhookTenantId
}

// The fallback: the Azure Function receiver, authenticated by the function key alone.
var functionKeyReceiver = {
  name: 'remediation-alerts'
  functionAppResourceId: functionApp.id
  functionName: alertsFunctionName
  httpTriggerUrl: alertsUrl
  useCommonAlertSchema: true
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-remediation-${functionAppName}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'autoremed'
    enabled: true
    webhookReceivers: useEntraWebhook ? [entraWebhookReceiver] : []
    azureFunctionReceivers: useEntraWebhook ? [] : [functionKeyReceiver]
  }
}

// Free space per VM and mount from VM insights (InsightsMetrics). _ResourceId makes each VM its own
// alert whose target is the VM; Mount splits it further per file system. The custom properties name
// the condition and the remediation, so routing does not depend on the query text.
resource diskFullAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = if (deploySampleAlerts) {
  name: 'disk-full-${functionAppName}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'VM disk almost full (auto-remediation)'
    description: 'Free space on a VM file system fell under ${diskFreeThresholdPercent}%. Sent to the auto-remediation app, which frees space on opted-in VMs.'
    severity: 2
    enabled: true
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    scopes: [
      vmInsightsWorkspaceId
    ]
    criteria: {
      allOf: [
        {
          query: '''
InsightsMetrics
| where Origin == "vm.azm.ms" and Namespace == "LogicalDisk" and Name == "FreeSpacePercentage"
| extend Mount = tostring(todynamic(Tags)["vm.azm.ms/mountId"])
| summarize FreeSpacePercentage = avg(Val) by bin(TimeGenerated, 5m), _ResourceId, Mount
'''
          timeAggregation: 'Average'
          metricMeasureColumn: 'FreeSpacePercentage'
          resourceIdColumn: '_ResourceId'
          dimensions: [
            {
              name: 'Mount'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'LessThan'
          threshold: diskFreeThresholdPercent
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    // Resolved notifications let the app note that the condition cleared.
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
      customProperties: {
        condition: 'disk-full'
        remediation: 'free-disk-space'
      }
    }
  }
}

// A systemd service that failed, from the Syslog the Azure Monitor Agent collects. The unit name becomes
// the ServiceName dimension, so each VM and unit is its own alert; restart-service reads it from there.
// Failures are events, not a level: no Resolved notification is needed (autoMitigate off).
resource serviceDownAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = if (deploySampleAlerts) {
  name: 'service-down-${functionAppName}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'VM service failed (auto-remediation)'
    description: 'A systemd service failed on a VM. Sent to the auto-remediation app, which restarts services the VM allows on opted-in VMs.'
    severity: 2
    enabled: true
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    scopes: [
      vmInsightsWorkspaceId
    ]
    criteria: {
      allOf: [
        {
          query: '''
Syslog
| where ProcessName == "systemd" and SyslogMessage has "Failed with result"
| extend ServiceName = extract(@"^([A-Za-z0-9@_.:-]+\.service): Failed with result", 1, SyslogMessage)
| where isnotempty(ServiceName)
| summarize Failures = count() by bin(TimeGenerated, 5m), _ResourceId, ServiceName
'''
          timeAggregation: 'Count'
          resourceIdColumn: '_ResourceId'
          dimensions: [
            {
              name: 'ServiceName'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: [
        actionGroup.id
      ]
      customProperties: {
        condition: 'service-down'
        remediation: 'restart-service'
      }
    }
  }
}

// Time service warnings on Linux (chronyd, systemd-timesyncd in Syslog) and Windows (Time-Service events
// 36: not synchronized for a day; 129 and 134: no time source reachable) in one rule, per VM.
resource clockSkewAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = if (deploySampleAlerts) {
  name: 'clock-skew-${functionAppName}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'VM time not synchronised (auto-remediation)'
    description: 'The time service of a VM reports that it cannot synchronise. Sent to the auto-remediation app, which restarts time synchronisation on opted-in VMs.'
    severity: 3
    enabled: true
    evaluationFrequency: 'PT15M'
    windowSize: 'PT30M'
    scopes: [
      vmInsightsWorkspaceId
    ]
    criteria: {
      allOf: [
        {
          query: '''
union isfuzzy=true
  (Syslog
    | where ProcessName in ("chronyd", "systemd-timesyncd")
    | where SyslogMessage has_any ("Can't synchronise", "no selectable sources", "Timed out waiting for reply")),
  (Event
    | where EventLog == "System" and Source == "Microsoft-Windows-Time-Service" and EventID in (36, 129, 134))
| summarize Warnings = count() by bin(TimeGenerated, 15m), _ResourceId
'''
          timeAggregation: 'Count'
          resourceIdColumn: '_ResourceId'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
      customProperties: {
        condition: 'clock-skew'
        remediation: 'fix-time-sync'
      }
    }
  }
}

// Sustained high CPU on any VM of the target scopes (a multi-resource platform metric alert, one per
// region): collect diagnostics while it happens. Metric alert custom properties travel as the action's
// webHookProperties and reach the app as the alert's customProperties.
resource highCpuAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = if (deployDiagnosticsAlert) {
  name: 'high-cpu-diagnostics-${functionAppName}'
  location: 'global'
  tags: tags
  properties: {
    description: 'Average CPU above ${cpuThresholdPercent}% for 15 minutes. Sent to the auto-remediation app, which collects diagnostics from opted-in VMs.'
    severity: 3
    enabled: true
    scopes: scopeList
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    targetResourceType: 'Microsoft.Compute/virtualMachines'
    targetResourceRegion: location
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.MultipleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'high-cpu'
          metricNamespace: 'Microsoft.Compute/virtualMachines'
          metricName: 'Percentage CPU'
          operator: 'GreaterThan'
          threshold: cpuThresholdPercent
          timeAggregation: 'Average'
        }
      ]
    }
    autoMitigate: true
    actions: [
      {
        actionGroupId: actionGroup.id
        webHookProperties: {
          condition: 'diagnostics-requested'
          remediation: 'collect-diagnostics'
        }
      }
    ]
  }
}

// Activity-log alerts only see their own subscription's log.
resource nsgRuleWriteAlert 'Microsoft.Insights/activityLogAlerts@2020-10-01' = if (deploySampleAlerts) {
  name: 'nsg-rule-write-${functionAppName}'
  location: 'global'
  tags: tags
  properties: {
    description: 'An NSG rule was written. The auto-remediation app checks whether it locks out SSH/RDP and restores access on opted-in VMs.'
    enabled: true
    scopes: [
      subscription().id
    ]
    condition: {
      allOf: [
        {
          field: 'category'
          equals: 'Administrative'
        }
        {
          field: 'operationName'
          equals: 'Microsoft.Network/networkSecurityGroups/securityRules/write'
        }
        {
          field: 'status'
          equals: 'Succeeded'
        }
      ]
    }
    actions: {
      actionGroups: [
        {
          actionGroupId: actionGroup.id
          webhookProperties: {
            condition: 'nsg-lockout'
            remediation: 'restore-management-access'
          }
        }
      ]
    }
  }
}

resource nsgWrites 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = [
  for chunk in range(0, subscriptionCount): {
    parent: systemTopic
    name: chunk == 0 ? 'nsg-writes-${functionAppName}' : 'nsg-writes-${functionAppName}-${chunk}'
    properties: {
      destination: {
        endpointType: 'AzureFunction'
        properties: {
          resourceId: '${functionApp.id}/functions/${resourceEventsFunctionName}'
          maxEventsPerBatch: 1
          preferredBatchSizeInKilobytes: 64
        }
      }
      eventDeliverySchema: 'EventGridSchema'
      filter: {
        includedEventTypes: [
          'Microsoft.Resources.ResourceWriteSuccess'
        ]
        // String filters compare case-insensitively, which matters: subjects spell resourceGroups either way.
        advancedFilters: [
          {
            operatorType: 'StringIn'
            key: 'data.operationName'
            values: nsgWriteOperations
          }
          {
            operatorType: 'StringBeginsWith'
            key: 'subject'
            values: take(skip(subjectPrefixes, chunk * prefixesPerSubscription), prefixesPerSubscription)
          }
        ]
      }
      // Event Grid retries for up to a day; what still fails lands in the dead-letter container.
      retryPolicy: {
        maxDeliveryAttempts: 30
        eventTimeToLiveInMinutes: 1440
      }
      deadLetterWithResourceIdentity: {
        identity: {
          type: 'UserAssigned'
          userAssignedIdentity: eventGridIdentityId
        }
        deadLetterDestination: {
          endpointType: 'StorageBlob'
          properties: {
            resourceId: storageAccount.id
            blobContainerName: deadLetterContainerName
          }
        }
      }
    }
  }
]

output actionGroupId string = actionGroup.id
output alertWebhookAuthentication string = useEntraWebhook ? 'entra' : 'function-key'
output eventSubscriptionNames array = [for chunk in range(0, subscriptionCount): nsgWrites[chunk].name]
