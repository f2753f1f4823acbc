"""Minting the diagnostics upload SAS against Azurite.

Azurite answers Get User Delegation Key only to a bearer token over HTTPS (``--oauth basic``, which
checks a token's audience, issuer and lifetime but not its signature): an Azurite of this module's own
runs that way, with a trustme certificate and an unsigned token for a made-up identity. Azurite 3.35
then refuses every user-delegation SAS it is shown (403 whatever the signed version), so what is
tested there is the minting: a key for the identity and a SAS for one blob, create and write only,
short-lived. The account-key path (a laptop's connection string) is tested end to end on the
session's Azurite: the SAS uploads its blob and nothing else.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
import trustme
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobClient, BlobServiceClient

from autoremediation.azure.diagnostics import BlobUploadGrants
from tests.azurite import AZURITE_BIN, Azurite, _free_ports, _listening, _stop, azurite  # noqa: F401

pytestmark = pytest.mark.azurite

TENANT = "ab1f708d-50f6-404c-a006-d71b2ac7a606"
APP_OBJECT_ID = "6d1c2b0e-0000-4000-8000-00000000beef"


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


class UnsignedToken:
    """A bearer token Azurite's basic OAuth mode accepts: right audience, issuer and lifetime."""

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        now = int(time.time())
        claims = {
            "aud": "https://storage.azure.com",
            "iss": f"https://sts.windows.net/{TENANT}/",
            "nbf": now - 60,
            "iat": now - 60,
            "exp": now + 3600,
            "oid": APP_OBJECT_ID,
            "tid": TENANT,
        }
        return AccessToken(f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.unsigned", now + 3600)


@pytest.fixture(scope="module")
def oauth_blob(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    if not AZURITE_BIN.exists():
        pytest.skip("Azurite is not installed (npm ci)")
    folder = tmp_path_factory.mktemp("azurite-oauth")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    [port] = _free_ports(1)
    blob_bin = AZURITE_BIN.with_name("azurite-blob")
    proc = subprocess.Popen(
        [str(blob_bin), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
         "--skipApiVersionCheck", "--silent", "--disableTelemetry", "--oauth", "basic",
         "--cert", str(folder / "cert.pem"), "--key", str(folder / "key.pem")],
        cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not _listening(port) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # polling readiness; the deadline only bounds a broken start
        assert _listening(port), "Azurite (OAuth, HTTPS) did not start"
        yield f"https://127.0.0.1:{port}/devstoreaccount1", str(folder / "ca.pem")
    finally:
        _stop(proc)


def test_a_user_delegation_sas_for_one_blob_create_and_write_only(oauth_blob: tuple[str, str]) -> None:
    url, ca = oauth_blob
    service = BlobServiceClient(url, credential=UnsignedToken(), connection_verify=ca, retry_total=0)
    service.create_container("diagnostics")
    before = datetime.now(UTC)

    grant = BlobUploadGrants(service, "diagnostics").grant("vm-web-1/job-1.tar.gz", 1020)

    assert grant.blob_url == f"{url}/diagnostics/vm-web-1/job-1.tar.gz"
    fields = {key: values[0] for key, values in parse_qs(grant.sas, keep_blank_values=True).items()}
    assert fields["sp"] == "cw" and fields["sr"] == "b" and fields["spr"] == "https"
    assert (
        fields["skoid"] == APP_OBJECT_ID and fields["sktid"] == TENANT
    )  # signed by the app's delegation key
    assert "sig" in fields and "sk" not in fields  # no account key involved
    expiry = datetime.fromisoformat(fields["se"].replace("Z", "+00:00"))
    assert 0 < (expiry - before).total_seconds() <= 1020 + 5
    assert datetime.fromisoformat(fields["ske"].replace("Z", "+00:00")) == expiry  # the key dies with it
    assert grant.expires_at.startswith(expiry.strftime("%Y-%m-%dT%H:%M"))
    assert "sig=" not in repr(grant)


def test_the_account_key_sas_uploads_its_blob_and_nothing_else(azurite: Azurite) -> None:  # noqa: F811
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = f"diag{int(time.time() * 1000) % 10**9}"
    service.create_container(container)

    grant = BlobUploadGrants(service, container).grant("vm-web-1/job-2.tar.gz", 600)

    BlobClient.from_blob_url(f"{grant.blob_url}?{grant.sas}").upload_blob(b"archive")
    assert service.get_blob_client(container, "vm-web-1/job-2.tar.gz").download_blob().readall() == b"archive"
    with pytest.raises(HttpResponseError) as read:
        BlobClient.from_blob_url(f"{grant.blob_url}?{grant.sas}").download_blob().readall()
    assert read.value.status_code == 403
    other = grant.blob_url.replace("job-2", "job-3")
    with pytest.raises(HttpResponseError) as elsewhere:
        BlobClient.from_blob_url(f"{other}?{grant.sas}").upload_blob(b"x")
    assert elsewhere.value.status_code == 403
    assert urlsplit(grant.blob_url).query == ""
