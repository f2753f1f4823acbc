// The Entra app registration of the operator API, its service principal and the deploying user's
// operator role, with the Microsoft Graph Bicep extension. Deploying it needs the right to create
// applications in the tenant (Application Developer / Application Administrator, or Graph
// Application.ReadWrite.All and AppRoleAssignment.ReadWrite.All). Without it, deploy with
// createOperatorApiRegistration=false and pass an existing registration's client id (infra/README.md).
//
// App Service authentication validates callers' tokens against this registration; the app reads the
// caller's app roles (roles claim) and object id (oid claim) from the principal the platform passes on.
extension 'br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:1.0.0'

@description('The registration\'s unique name (the Graph Bicep key that makes redeployments update it).')
param uniqueName string

@description('Display name in Entra ID.')
param displayName string

@description('App role that may request, approve and reject remediations (REMEDIATION_OPERATOR_ROLE).')
param operatorRole string

@description('App role that may read jobs, the catalog and campaigns (REMEDIATION_READER_ROLE).')
param readerRole string

@description('Host name of the Function App: the operator console signs people in through its /.auth/login/aad/callback.')
param appHostName string

@description('Identifier URI of the API (api://<tenant id>/<name>, one of the forms Entra accepts without a verified domain).')
param identifierUri string

@description('Object id of a user given the operator role (azd: the deploying user); empty for nobody.')
param operatorPrincipalId string = ''

@description('Microsoft\'s Action Groups application ("AzNS AAD Webhook"): the Action Group\'s secure webhook authenticates as it, and gets the ActionGroupsSecureWebhook role on this API.')
param actionGroupsAppId string = '461e8683-5575-4561-ac7f-899cc907d62a'

@description('Public clients allowed to ask for a token without a consent prompt: the Azure CLI and Azure PowerShell, which DefaultAzureCredential uses on an operator\'s machine.')
param preAuthorizedClientIds array = [
  '04b07795-8ddb-461a-bbee-02f9e1bf7b46'
  '1950a258-227b-4e31-a9cf-717495945fc2'
]

// Stable ids: the same deployment always names the same roles, so assignments survive redeployments.
var operatorRoleId = guid(tenant().tenantId, uniqueName, operatorRole)
var readerRoleId = guid(tenant().tenantId, uniqueName, readerRole)
var userScopeId = guid(tenant().tenantId, uniqueName, 'user_impersonation')
// The app role the alert webhook checks (autoremediation/blueprints/webhook_auth.py).
var webhookRole = 'ActionGroupsSecureWebhook'
var webhookRoleId = guid(tenant().tenantId, uniqueName, webhookRole)

resource application 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: uniqueName
  displayName: displayName
  signInAudience: 'AzureADMyOrg'
  identifierUris: [
    identifierUri
  ]
  // The console's sign-in: App Service authentication's callback, ID tokens by the implicit flow (no secret).
  web: {
    redirectUris: [
      'https://${appHostName}/.auth/login/aad/callback'
    ]
    implicitGrantSettings: {
      enableIdTokenIssuance: true
      enableAccessTokenIssuance: false
    }
  }
  api: {
    // v2 tokens: issuer login.microsoftonline.com/<tenant>/v2.0 and audience the client id, as the
    // authentication settings expect.
    requestedAccessTokenVersion: 2
    oauth2PermissionScopes: [
      {
        id: userScopeId
        value: 'user_impersonation'
        type: 'User'
        isEnabled: true
        adminConsentDisplayName: 'Use the VM auto-remediation operator API'
        adminConsentDescription: 'Lets the app call the operator API as the signed-in user; the user\'s app roles decide what they may do.'
        userConsentDisplayName: 'Use the VM auto-remediation operator API'
        userConsentDescription: 'Call the operator API as you; your app roles decide what you may do.'
      }
    ]
    preAuthorizedApplications: [
      for clientId in preAuthorizedClientIds: {
        appId: clientId
        delegatedPermissionIds: [
          userScopeId
        ]
      }
    ]
  }
  appRoles: [
    {
      id: operatorRoleId
      value: operatorRole
      displayName: 'Remediation operator'
      description: 'Request, approve and reject remediations and start campaigns (and read everything).'
      allowedMemberTypes: [
        'User'
        'Application'
      ]
      isEnabled: true
    }
    {
      id: readerRoleId
      value: readerRole
      displayName: 'Remediation reader'
      description: 'Read remediation jobs, the catalog and campaigns.'
      allowedMemberTypes: [
        'User'
        'Application'
      ]
      isEnabled: true
    }
    {
      id: webhookRoleId
      value: webhookRole
      displayName: 'Action Group secure webhook'
      description: 'Post alerts to the alert webhook (held by the Action Groups service principal only).'
      allowedMemberTypes: [
        'Application'
      ]
      isEnabled: true
    }
  ]
}

resource servicePrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: application.appId
  // Only users, groups and applications given one of the roles get a token for the API at all.
  appRoleAssignmentRequired: true
}

resource deployerIsOperator 'Microsoft.Graph/appRoleAssignedTo@v1.0' = if (!empty(operatorPrincipalId)) {
  appRoleId: operatorRoleId
  principalId: operatorPrincipalId
  resourceId: servicePrincipal.id
}

// The Action Groups service principal of this tenant (created from the application id if the tenant has
// none yet), allowed to post alerts: its secure webhook token then carries the webhook role.
resource actionGroupsServicePrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: actionGroupsAppId
}

resource actionGroupsMayPostAlerts 'Microsoft.Graph/appRoleAssignedTo@v1.0' = {
  appRoleId: webhookRoleId
  principalId: actionGroupsServicePrincipal.id
  resourceId: servicePrincipal.id
}

output clientId string = application.appId
output applicationObjectId string = application.id
output identifierUri string = identifierUri
output servicePrincipalId string = servicePrincipal.id
output operatorRoleId string = operatorRoleId
output readerRoleId string = readerRoleId
