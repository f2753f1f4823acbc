// The Event Grid system topic on the subscription's resource events. Azure allows one system topic per
// source: where the subscription already has one, pass its name (and resource group) instead.
// The event subscription to the app is created after the code is deployed (wiring.bicep), because
// Event Grid validates that the target function exists.

@description('System topic name.')
param systemTopicName string

@description('Tags applied to the topic.')
param tags object

@description('Resource id of the identity Event Grid dead-letters with.')
param eventGridIdentityId string

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: systemTopicName
  location: 'global'
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${eventGridIdentityId}': {}
    }
  }
  properties: {
    source: subscription().id
    topicType: 'Microsoft.Resources.Subscriptions'
  }
}

output systemTopicName string = systemTopic.name
