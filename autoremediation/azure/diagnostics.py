"""Upload grants for the diagnostics container: a user-delegation SAS minted at dispatch.

The app's identity asks Blob Storage for a user delegation key (role Storage Blob Delegator on the
account, for ``generateUserDelegationKey``) and signs a SAS with it for exactly one new blob of its own
diagnostics container, create and write only, valid for the run's timeout. The SAS is handed to the
run command as a protected parameter and kept nowhere: not in a request, a job record, a log or a queue
message. Without Entra (a connection string with an account key, as on a laptop against Azurite) the
key is the account's own and the SAS a service SAS with the same limits.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from ..errors import InvalidInput, Permanent, Transient
from ..ports import UploadGrant
from ..settings import Settings

# Clock skew between the app and Storage: the SAS starts a little in the past.
START_SKEW = timedelta(minutes=5)
LONGEST = timedelta(hours=6)


class BlobUploadGrants:
    """``UploadGrants`` on azure-storage-blob. ``service`` is a BlobServiceClient (tests pass their own)."""

    def __init__(self, service: Any, container: str) -> None:
        self.service = service
        self.container = container

    @classmethod
    def from_settings(cls, settings: Settings, credential: Any | None = None) -> BlobUploadGrants:
        from azure.storage.blob import BlobServiceClient

        if settings.blob_service_uri:
            if credential is None:
                from ..store.factory import storage_credential

                credential = storage_credential(settings)
            service = BlobServiceClient(settings.blob_service_uri, credential=credential, retry_total=2)
        elif settings.storage_connection_string:
            service = BlobServiceClient.from_connection_string(settings.storage_connection_string)
        else:
            raise InvalidInput(
                "no diagnostics storage is configured "
                "(REMEDIATION_STORAGE__blobServiceUri or REMEDIATION_STORAGE)"
            )
        return cls(service, settings.diagnostics_container)

    def grant(self, blob_name: str, lifetime_seconds: float) -> UploadGrant:
        from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError

        try:
            return self._grant(blob_name, lifetime_seconds)
        except (ClientAuthenticationError, HttpResponseError) as error:
            status = getattr(error, "status_code", None)
            if status is not None and status < 500 and status not in (408, 429):
                raise Permanent(
                    f"diagnostics storage refused a user delegation key: {error.message}"
                ) from None
            raise Transient(f"diagnostics storage: {error.message}") from None
        except AzureError as error:
            raise Transient(f"diagnostics storage: {error}") from None

    def _grant(self, blob_name: str, lifetime_seconds: float) -> UploadGrant:
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        now = datetime.now(UTC)
        start = now - START_SKEW
        expiry = now + min(timedelta(seconds=lifetime_seconds), LONGEST)
        permission = BlobSasPermissions(create=True, write=True)
        account = self.service.account_name
        protocol = "https" if self.service.url.startswith("https://") else None
        key = getattr(self.service.credential, "account_key", None)
        if key:
            sas = generate_blob_sas(
                account,
                self.container,
                blob_name,
                account_key=key,
                permission=permission,
                expiry=expiry,
                start=start,
                protocol=protocol,
            )
        else:
            delegation = self.service.get_user_delegation_key(start, expiry)
            sas = generate_blob_sas(
                account,
                self.container,
                blob_name,
                user_delegation_key=delegation,
                permission=permission,
                expiry=expiry,
                start=start,
                protocol=protocol,
            )
        blob_url = f"{self.service.url.rstrip('/')}/{self.container}/{quote(blob_name)}"
        return UploadGrant(blob_url=blob_url, sas=sas, expires_at=expiry.isoformat())
