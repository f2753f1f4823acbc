// VM auto-remediation on Azure Functions Flex Consumption: `azd up`, or
//   az deployment sub create -l <region> -f infra/main.bicep -p environmentName=<env> targetScopes=<ids>
// Creates the resource group, identities, storage, monitoring, the Function App, its data-plane roles,
// the custom operator role assigned at each target scope, the Event Grid system topic, and a workbook.
// Alerts, the Action Group and the event subscription need the deployed code: see wiring.bicep.
targetScope = 'subscription'

@description('azd environment name: names the resource group and seeds every resource name.')
@minLength(1)
@maxLength(40)
param environmentName string

@description('Region of every regional resource (one that offers Flex Consumption).')
@minLength(1)
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Comma-separated subscription ids (/subscriptions/<id>) or resource group ids (/subscriptions/<id>/resourceGroups/<name>) the app may remediate VMs in. The operator role is assigned at each. Empty: the app\'s own resource group only, which holds no VMs, so nothing is remediated until you name real scopes (azd up --no-prompt works on a first run).')
param targetScopes string = ''

@description('Object id of the person or pipeline deploying (azd sets AZURE_PRINCIPAL_ID): gets read access to the job records and dead-letters. Empty: no role for the deployer.')
param principalId string = ''

@description('Resource group name; empty for rg-<environmentName>.')
param resourceGroupName string = ''

@description('Tag that opts a VM in, as name=value or a bare name (any value); empty for autoremediation=enabled.')
param optInTag string = ''

@description('Tag that takes a VM out of remediation whatever else it carries.')
param quarantineTag string = 'autoremediation-quarantine'

@description('true: scripts only report what they would change (DRY_RUN=1). Turn off once the outcomes look right.')
@allowed([
  'true'
  'false'
])
param dryRun string = 'true'

@description('true stops every dispatch.')
@allowed([
  'true'
  'false'
])
param killSwitch string = 'false'

@description('managed (Managed Run Command) or action (classic Action Run Command).')
@allowed([
  'managed'
  'action'
])
param runCommandMode string = 'managed'

@description('Comma-separated NSG source prefixes whose SSH/RDP access must stay open.')
param managementSources string = 'VirtualNetwork'

@description('Path (relative to the app root) of Microsoft\'s Service Tags JSON shipped with the app; empty: NSG rules naming other service tags are evaluated as uncertain.')
param serviceTagsFile string = ''

@description('Storage replication. Standard_LRS works in every region; Standard_ZRS (or GZRS) keeps job history through a zone outage where the region has availability zones.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param storageSku string = 'Standard_LRS'

@description('Upper bound of Flex Consumption instances.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Name of the Event Grid system topic on this subscription; Azure allows one per subscription, so reuse an existing one by name (it must live in the app\'s resource group).')
param systemTopicName string = ''

@secure()
@description('Comma-separated webhook URLs (Teams Workflows, Slack, or any JSON receiver; prefix teams:, slack: or json: to choose the format) told when a job awaits approval, fails, times out, or a breaker opens. Empty: no notifications.')
param notifyUrls string = ''

@description('true: the webhooks are also told when a job succeeds.')
@allowed([
  'true'
  'false'
])
param notifyOnSuccess string = 'false'

@description('true: create the operator API\'s Entra app registration (app roles Remediation.Operator and Remediation.Reader) with the Microsoft Graph Bicep extension; the deployer needs the right to create applications. false: pass operatorApiClientId of a registration made beforehand (infra/README.md).')
@allowed([
  'true'
  'false'
])
param createOperatorApiRegistration string = 'true'

@description('Client id of an existing app registration for the operator API (with createOperatorApiRegistration=false). Empty: App Service authentication stays off and the operator API refuses every call.')
param operatorApiClientId string = ''

@description('Identifier URI of that existing registration; empty for api://<client id>.')
param operatorApiIdentifierUri string = ''

@description('Object id of that existing registration (the Action Group\'s secure webhook names it); empty: the alert webhook falls back to the function key.')
param operatorApiObjectId string = ''

@description('Object id of the deploying user (azd sets AZURE_PRINCIPAL_ID): given the operator app role on a registration this template creates.')
param principalId string = ''

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
  workload: 'vm-autoremediation'
}

// Target scopes, trimmed and classified by shape. Every index and length below stays in range for any
// input, whichever branch of a condition ARM evaluates: the split runs on the scope padded with five
// segments, and take() accepts a negative count.
// An entry of neither shape still goes to the role's assignable scopes, where ARM rejects it by name
// instead of this template skipping it in silence.
var resourceGroupNameResolved = empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName
var defaultTargetScope = '${subscription().id}/resourceGroups/${resourceGroupNameResolved}'
var scopeList = [
  for entry in split(empty(trim(targetScopes)) ? defaultTargetScope : replace(targetScopes, ' ', ''), ','): endsWith(entry, '/') ? take(entry, length(entry) - 1) : entry
]
var scopeShapes = [
  for entry in scopeList: {
    parts: split('${entry}/-/-/-/-/-', '/')
    depth: length(split(entry, '/'))
  }
]
var scopes = [
  for shape in scopeShapes: {
    kind: shape.depth == 3 && toLower(shape.parts[1]) == 'subscriptions' ? 'subscription' : (shape.depth == 5 && toLower(shape.parts[3]) == 'resourcegroups' ? 'resourceGroup' : 'invalid')
    // Placeholders keep the scope of a skipped module well-formed; it is never deployed.
    subscriptionId: shape.depth >= 3 ? shape.parts[2] : subscription().subscriptionId
    resourceGroupName: shape.depth == 5 ? shape.parts[4] : 'unused'
  }
]

var names = {
  resourceGroup: resourceGroupNameResolved
  appIdentity: 'id-func-${resourceToken}'
  eventGridIdentity: 'id-evgt-${resourceToken}'
  storage: 'st${resourceToken}'
  workspace: 'log-${resourceToken}'
  appInsights: 'appi-${resourceToken}'
  plan: 'plan-${resourceToken}'
  functionApp: 'func-${resourceToken}'
  systemTopic: empty(systemTopicName) ? 'evgt-sub-${resourceToken}' : systemTopicName
  operatorApi: 'vm-autoremediation-${environmentName}-${resourceToken}'
}

// App roles of the operator API (the app reads the same names from its settings).
var appRoleNames = {
  operator: 'Remediation.Operator'
  reader: 'Remediation.Reader'
}
var createRegistration = createOperatorApiRegistration == 'true'
var authenticationOn = createRegistration || !empty(operatorApiClientId)
// api://<tenant id>/<name>: an identifier URI form Entra accepts without a verified domain. Known before
// the registration exists, so the app can be told its scope without waiting for Graph.
var createdIdentifierUri = 'api://${tenant().tenantId}/${names.operatorApi}'

// The custom role lives in the subscription of the first target scope. Its GUID and its name (role
// names are unique per tenant) derive from this deployment (subscription, environment, region) and
// from that subscription, all known before anything deploys: moving the first scope to another
// subscription makes a new role instead of colliding with the old one by name, and the assignments
// below name the role without waiting for the role module's outputs (what-if sees every resource).
var operatorRoleSubscriptionId = scopes[0].subscriptionId
var operatorRoleGuid = guid(subscription().id, environmentName, location, 'operator-role', operatorRoleSubscriptionId)
var operatorRoleName = 'VM Auto-Remediation Operator (${environmentName}, ${take(operatorRoleGuid, 8)})'

// The app identity's resource id, spelled from names known at the start: role assignment names derive
// from it instead of from the principal id, which exists only once the identity does.
var appIdentityKey = '${subscription().id}/resourceGroups/${names.resourceGroup}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${names.appIdentity}'
var eventGridIdentityKey = '${subscription().id}/resourceGroups/${names.resourceGroup}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${names.eventGridIdentity}'

var deploymentContainerName = 'app-package'
var deadLetterContainerName = 'eventgrid-deadletters'
var queueName = 'remediation-jobs'
var tablePrefix = 'remediation'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: names.resourceGroup
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    location: location
    tags: tags
    appIdentityName: names.appIdentity
    eventGridIdentityName: names.eventGridIdentity
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    location: location
    tags: tags
    workspaceName: names.workspace
    appInsightsName: names.appInsights
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    location: location
    tags: tags
    storageAccountName: names.storage
    skuName: storageSku
    deploymentContainerName: deploymentContainerName
    deadLetterContainerName: deadLetterContainerName
    queueName: queueName
    tablePrefix: tablePrefix
    eventGridPrincipalId: identity.outputs.eventGridIdentityPrincipalId
    eventGridPrincipalKey: eventGridIdentityKey
    appPrincipalId: identity.outputs.appIdentityPrincipalId
    appPrincipalKey: appIdentityKey
  }
}

module appRoles 'modules/app-roles.bicep' = {
  name: 'app-roles'
  scope: rg
  params: {
    storageAccountName: names.storage
    appInsightsName: names.appInsights
    principalId: identity.outputs.appIdentityPrincipalId
    principalKey: appIdentityKey
  }
  dependsOn: [
    storage
    monitoring
  ]
}

module deployerRoles 'modules/deployer-roles.bicep' = if (!empty(principalId)) {
  name: 'deployer-roles'
  scope: rg
  params: {
    storageAccountName: names.storage
    principalId: principalId
  }
  dependsOn: [
    storage
  ]
}

module operatorApiRegistration 'modules/operator-api-registration.bicep' = if (createRegistration) {
  name: 'operator-api-registration'
  scope: rg
  params: {
    uniqueName: names.operatorApi
    displayName: 'VM auto-remediation operator API (${environmentName})'
    operatorRole: appRoleNames.operator
    readerRole: appRoleNames.reader
    operatorPrincipalId: principalId
    appHostName: functionApp.outputs.defaultHostName
    identifierUri: createdIdentifierUri
  }
}

// The registration this template made, or the one passed in (the fallback without Graph rights).
var operatorApi = {
  clientId: createRegistration ? operatorApiRegistration.outputs.clientId : operatorApiClientId
  identifierUri: createRegistration ? createdIdentifierUri : (empty(operatorApiIdentifierUri) ? 'api://${operatorApiClientId}' : operatorApiIdentifierUri)
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  params: {
    location: location
    tags: tags
    planName: names.plan
    functionAppName: names.functionApp
    serviceName: 'api'
    identityId: identity.outputs.appIdentityId
    identityClientId: identity.outputs.appIdentityClientId
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    maximumInstanceCount: maximumInstanceCount
    queueName: storage.outputs.queueName
    tablePrefix: tablePrefix
    allowedScopes: join(scopeList, ',')
    optInTag: empty(optInTag) ? 'autoremediation=enabled' : optInTag
    quarantineTag: quarantineTag
    killSwitch: killSwitch
    dryRun: dryRun
    runCommandMode: runCommandMode
    managementSources: managementSources
    serviceTagsFile: serviceTagsFile
    operatorRole: appRoleNames.operator
    readerRole: appRoleNames.reader
    operatorApiScope: authenticationOn ? '${operatorApi.identifierUri}/.default' : ''
    notifyUrls: notifyUrls
    notifyOnSuccess: notifyOnSuccess
    diagnosticsContainer: storage.outputs.diagnosticsContainerName
  }
  // The host starts as soon as the app exists: give it its storage and telemetry roles first.
  dependsOn: [
    appRoles
  ]
}

module authentication 'modules/authentication.bicep' = if (authenticationOn) {
  name: 'authentication'
  scope: rg
  params: {
    // A name known at the start (what-if sees the resource); the site must exist first.
    functionAppName: names.functionApp
    clientId: operatorApi.clientId
    identifierUri: operatorApi.identifierUri
  }
  dependsOn: [
    functionApp
  ]
}

// What the app did, from its customEvents: outcomes, failures, pending approvals, VMs, breakers, campaigns.
module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    location: location
    tags: tags
    appInsightsId: monitoring.outputs.appInsightsId
    displayName: 'VM auto-remediation (${environmentName})'
  }
}

// Created in the subscription of the first target scope, so the definition's own scope is always a parent
// of (or equal to) one of its assignable scopes, wherever the app itself is deployed.
module operatorRole 'modules/operator-role.bicep' = {
  name: 'operator-role-${resourceToken}'
  scope: subscription(operatorRoleSubscriptionId)
  params: {
    roleDefinitionGuid: operatorRoleGuid
    roleName: operatorRoleName
    assignableScopes: scopeList
    runCommandMode: runCommandMode
  }
}

module operatorOnResourceGroups 'modules/operator-assignment-rg.bicep' = [
  for (target, i) in scopes: if (target.kind == 'resourceGroup') {
    name: take('operator-rg-${resourceToken}-${i}', 64)
    scope: resourceGroup(target.subscriptionId, target.resourceGroupName)
    params: {
      roleDefinitionGuid: operatorRoleGuid
      principalId: identity.outputs.appIdentityPrincipalId
      principalKey: appIdentityKey
    }
    dependsOn: [
      operatorRole
    ]
  }
]

module operatorOnSubscriptions 'modules/operator-assignment-sub.bicep' = [
  for (target, i) in scopes: if (target.kind == 'subscription') {
    name: take('operator-sub-${resourceToken}-${i}', 64)
    scope: subscription(target.subscriptionId)
    params: {
      roleDefinitionGuid: operatorRoleGuid
      principalId: identity.outputs.appIdentityPrincipalId
      principalKey: appIdentityKey
    }
    dependsOn: [
      operatorRole
    ]
  }
]

module eventGridTopic 'modules/eventgrid-topic.bicep' = {
  name: 'eventgrid-topic'
  scope: rg
  params: {
    systemTopicName: names.systemTopic
    tags: tags
    eventGridIdentityId: identity.outputs.eventGridIdentityId
  }
}

// azd stores these in the environment; the postdeploy hook passes them to wiring.bicep.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output FUNCTION_APP_NAME string = functionApp.outputs.functionAppName
output FUNCTION_APP_HOST string = functionApp.outputs.defaultHostName
output STORAGE_ACCOUNT_NAME string = storage.outputs.accountName
output DEADLETTER_CONTAINER_NAME string = storage.outputs.deadLetterContainerName
output REMEDIATION_QUEUE_NAME string = storage.outputs.queueName
output EVENTGRID_SYSTEM_TOPIC_NAME string = eventGridTopic.outputs.systemTopicName
output EVENTGRID_IDENTITY_ID string = identity.outputs.eventGridIdentityId
output LOG_ANALYTICS_WORKSPACE_ID string = monitoring.outputs.workspaceId
output REMEDIATION_WORKBOOK_ID string = workbook.outputs.workbookId
output REMEDIATION_TARGET_SCOPES string = join(scopeList, ',')
// The predown hook removes this role's assignments at the target scopes, then the role itself.
output OPERATOR_ROLE_DEFINITION_ID string = subscriptionResourceId(operatorRoleSubscriptionId, 'Microsoft.Authorization/roleDefinitions', operatorRoleGuid)
output OPERATOR_ROLE_NAME string = operatorRoleName
// The remote CLI: `remediate --app https://<FUNCTION_APP_HOST> ...` (it reads the scope from the app).
output REMEDIATION_APP_URL string = 'https://${functionApp.outputs.defaultHostName}'
output REMEDIATION_APP_SCOPE string = authenticationOn ? '${operatorApi.identifierUri}/.default' : ''
output OPERATOR_API_CLIENT_ID string = operatorApi.clientId
// The postdeploy hook wires the Action Group's secure webhook to the same registration (wiring.bicep).
output ALERT_WEBHOOK_APP_OBJECT_ID string = createRegistration ? operatorApiRegistration.outputs.applicationObjectId : operatorApiObjectId
output ALERT_WEBHOOK_APP_ID_URI string = authenticationOn ? operatorApi.identifierUri : ''
// The predown hook deletes (and purges) the app registration only when this deployment created it.
output OPERATOR_API_APP_OBJECT_ID_CREATED string = createRegistration ? operatorApiRegistration.outputs.applicationObjectId : ''
