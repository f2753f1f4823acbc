"""Who may post an alert: the Action Group, proven by its Entra token; or, the weaker fallback, anyone
holding the ``alerts`` function's key.

The deployed default is the Action Group's secure webhook (a webhook receiver with ``useAadAuth``, see
infra/wiring.bicep). The Action Group then asks Microsoft Entra ID for a token for the app registration
that fronts the app (its identifier URI is the audience) as its own first-party application, "AzNS AAD
Webhook" (application id ``461e8683-5575-4561-ac7f-899cc907d62a``), and sends it as a bearer token.
App Service authentication validates the token (signature, issuer, audience) before the request
reaches the app, strips any client-sent ``X-MS-*`` header, and hands the token's claims over in
``X-MS-CLIENT-PRINCIPAL``. What the platform does not check, this module does:

* the caller is the Action Group service: the ``appid`` (v1 token) or ``azp`` (v2) claim is its
  application id, so no other application of the tenant that can get a token for the app posts alerts;
* the caller holds the app role ``ActionGroupsSecureWebhook`` (``roles`` claim), which the deployment
  assigns to the Action Group service principal on the app registration;
* the token was issued in the deployment's own tenant: its ``tid`` claim is ``AZURE_TENANT_ID`` (a
  multi-tenant app registration, or an issuer list wider than the tenant, would otherwise let another
  tenant's Action Group in). An app that does not know its tenant admits no token.

With App Service authentication off (``WEBSITE_AUTH_ENABLED`` unset) no front end strips a client-sent
principal header: the app ignores it, and the function key alone admits the call. That is the documented
fallback: whoever holds the key can post any alert body, which the other guards (trusted rules,
provenance confirmation, parameter sources) must then stop.
"""

from __future__ import annotations

from collections.abc import Mapping

from .auth import PRINCIPAL_HEADER, ROLE_CLAIMS, _decode_principal
from .responses import Forbidden, Unauthenticated

# Microsoft's first-party application the Action Group service authenticates as (Azure Monitor docs,
# "Secure webhook": $actionGroupsAppId).
ACTION_GROUPS_APP_ID = "461e8683-5575-4561-ac7f-899cc907d62a"
# The app role the Action Group service principal is assigned on the app registration.
SECURE_WEBHOOK_ROLE = "ActionGroupsSecureWebhook"
APP_ID_CLAIMS = ("appid", "azp")
TENANT_CLAIMS = ("tid", "http://schemas.microsoft.com/identity/claims/tenantid")
ENTRA = "entra"  # the Action Group, proven by its Entra token
FUNCTION_KEY = "function-key"  # whoever holds the function key: the weaker fallback


def check_alert_caller(headers: Mapping[str, str], *, platform_auth: bool, tenant_id: str = "") -> str:
    """How the alert post was authenticated (``entra`` or ``function-key``); Unauthenticated (401) or
    Forbidden (403) when App Service authentication is on and the caller is not the Action Group.

    ``headers`` must be case-insensitive; ``platform_auth``: App Service authentication fronts the app;
    ``tenant_id``: the deployment's tenant (``AZURE_TENANT_ID``), which must have issued the token.
    """
    if not platform_auth:
        return FUNCTION_KEY
    raw = headers.get(PRINCIPAL_HEADER)
    if raw is None or not raw.strip():
        raise Unauthenticated(
            "the alert webhook takes the Action Group's Entra token: configure the action group's "
            "webhook with useAadAuth (secure webhook)"
        )
    principal = _decode_principal(raw)
    role_types = set(ROLE_CLAIMS)
    if isinstance(principal.get("role_typ"), str):
        role_types.add(str(principal["role_typ"]))
    app_ids: set[str] = set()
    tenants: set[str] = set()
    roles: set[str] = set()
    listed = principal.get("claims")
    for claim in listed if isinstance(listed, list) else []:
        if not isinstance(claim, dict):
            continue
        typ, val = str(claim.get("typ", "")), str(claim.get("val", "")).strip()
        if typ in APP_ID_CLAIMS:
            app_ids.add(val.lower())
        if typ in TENANT_CLAIMS:
            tenants.add(val.lower())
        if typ in role_types:
            roles.add(val)
    if app_ids != {ACTION_GROUPS_APP_ID}:
        shown = ", ".join(sorted(app_ids)) or "none"
        raise Forbidden(
            f"only the Action Group service ({ACTION_GROUPS_APP_ID}) posts alerts; "
            f"the token's application is {shown}"
        )
    if SECURE_WEBHOOK_ROLE not in roles:
        raise Forbidden(
            f"the Action Group's token lacks the app role {SECURE_WEBHOOK_ROLE}: assign it to the Action "
            "Group service principal on the app registration"
        )
    if not tenant_id.strip():
        raise Forbidden(
            "the app does not know its tenant (AZURE_TENANT_ID): no Entra token is admitted until it is set"
        )
    if tenants != {tenant_id.strip().lower()}:
        shown = ", ".join(sorted(tenants)) or "none"
        raise Forbidden(f"the token was issued in tenant {shown}, not in this deployment's tenant")
    return ENTRA
