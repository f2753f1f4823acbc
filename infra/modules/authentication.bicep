// App Service authentication (Easy Auth) in front of the Function App, with Microsoft Entra ID.
//
// Every path needs a signed-in caller of the operator API's registration except:
//   /api/health                 anonymous liveness
//   /api/openapi                the API document (it grants nothing)
//   /runtime/webhooks/eventgrid the Event Grid trigger's endpoint (system key; Event Grid sends no Entra token)
// The platform strips client-sent X-MS-* headers and passes the caller on in X-MS-CLIENT-PRINCIPAL,
// -ID and -NAME; it sets WEBSITE_AUTH_ENABLED, which tells the app to trust them. The alert webhook
// stays behind it: the Action Group's secure webhook sends its own Entra token, and the app admits only
// that caller (autoremediation/blueprints/webhook_auth.py).
// A browser without a session (the operator console) is sent to sign in with Entra ID; without a client
// secret the platform uses the OpenID Connect implicit flow (ID tokens only), so no secret is stored. API
// clients send a bearer token (the remote CLI); one without a valid token is redirected too, never let in.

@description('Function App name.')
param functionAppName string

@description('Client id of the operator API\'s app registration.')
param clientId string

@description('Identifier URI of that registration (tokens with version 1 name it as their audience).')
param identifierUri string

var excludedPaths = [
  '/api/health'
  '/api/openapi'
  '/runtime/webhooks/eventgrid'
]

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

// checkov applies its checks of the classic 'authsettings' and of the 'web' site config to every
// Microsoft.Web/sites/config resource; these fit neither an authsettingsV2 resource (tests/infra checks it):
resource authentication 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13: reads the classic authsettings 'enabled' flag; authsettingsV2 turns authentication on with platform.enabled
  // checkov:skip=CKV_AZURE_63: HTTP logging is a setting of the 'web' config, not of authentication
  // checkov:skip=CKV_AZURE_65: detailed error messages are a setting of the 'web' config, not of authentication
  // checkov:skip=CKV_AZURE_66: failed request tracing is a setting of the 'web' config, not of authentication
  // checkov:skip=CKV_AZURE_80: the .NET version is a setting of the 'web' config; this app runs Python
  // checkov:skip=CKV_AZURE_88: Azure Files mounts are a setting of the site, not of authentication
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'RedirectToLoginPage'
      redirectToProvider: 'azureactivedirectory'
      excludedPaths: excludedPaths
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: clientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            clientId
            identifierUri
          ]
        }
      }
    }
    login: {
      // Bearer tokens only: no browser sessions, no tokens kept at rest.
      tokenStore: {
        enabled: false
      }
    }
  }
}

output excludedPaths array = excludedPaths
