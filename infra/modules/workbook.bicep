// An Azure Monitor workbook over the app's customEvents (one RemediationTransition event per job
// transition): outcomes over time, failures with reasons, pending approvals and their age, busiest VMs,
// circuit breakers, campaign progress. Its queries live in infra/workbook/remediation.workbook.json.

@description('Region of the workbook.')
param location string

@description('Tags applied to the workbook.')
param tags object

@description('Resource id of the Application Insights component the queries read.')
param appInsightsId string

@description('Name shown in the portal.')
param displayName string

// The gallery JSON names no resource: the component is filled in here, so the workbook opens on it.
var serializedData = replace(loadTextContent('../workbook/remediation.workbook.json'), '__APP_INSIGHTS_ID__', appInsightsId)

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  // From values known when the deployment starts (what-if cannot see a module's outputs): one per group.
  name: guid(resourceGroup().id, 'vm-autoremediation-workbook')
  location: location
  tags: union(tags, {
    'hidden-title': displayName
  })
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: appInsightsId
    serializedData: serializedData
    version: 'Notebook/1.0'
  }
}

output workbookId string = workbook.id
