// User-assigned managed identities: one for the Function App (storage, telemetry, ARM calls on target
// VMs) and one for Event Grid (dead-lettering only). Separate identities keep each grant minimal.

@description('Region of the identities.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Name of the Function App identity.')
param appIdentityName string

@description('Name of the Event Grid identity that writes undeliverable events to the dead-letter container.')
param eventGridIdentityName string

resource appIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: appIdentityName
  location: location
  tags: tags
}

resource eventGridIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: eventGridIdentityName
  location: location
  tags: tags
}

output appIdentityId string = appIdentity.id
output appIdentityClientId string = appIdentity.properties.clientId
output appIdentityPrincipalId string = appIdentity.properties.principalId
output eventGridIdentityId string = eventGridIdentity.id
output eventGridIdentityPrincipalId string = eventGridIdentity.properties.principalId
