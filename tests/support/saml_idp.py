"""A real SAML 2.0 identity provider for the SAML sign-in tests: pysaml2's IdP, in the test process,
with a key and certificate made for the test. It reads the portal's AuthnRequest from the
HTTP-Redirect binding, and answers with a Response whose assertion it signs (xmlsec1), as
Shibboleth, Entra ID or Okta would; the test's browser posts it to the portal's ACS."""

from __future__ import annotations

import base64
import datetime
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID
from saml2.server import Server
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

IDP_ENTITY_ID = "https://idp.uni.example.edu/idp/shibboleth"
IDP_SSO_URL = "https://idp.uni.example.edu/idp/profile/SAML2/Redirect/SSO"
# The attribute names InCommon's Shibboleth IdPs release (eduPerson/inetOrgPerson OIDs).
MAIL = "urn:oid:0.9.2342.19200300.100.1.3"
GIVEN_NAME = "urn:oid:2.5.4.42"
SURNAME = "urn:oid:2.5.4.4"
MFA_ATTRIBUTE = "http://schemas.microsoft.com/claims/authnmethodsreferences"
MFA_VALUE = "http://schemas.microsoft.com/claims/multipleauthn"


def key_and_certificate(directory: Path) -> tuple[Path, Path]:
    """A fresh RSA key and a self-signed certificate for it, as PEM files (pysaml2 reads files)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.uni.example.edu")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_file, cert_file = directory / "idp.key", directory / "idp.crt"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_file, cert_file


def certificate_body(cert_file: Path) -> str:
    """The certificate as the portal's settings take it: base64 DER, without PEM's armour."""
    lines = cert_file.read_text().strip().splitlines()
    return "".join(line for line in lines if "CERTIFICATE" not in line)


@dataclass
class IdentityProvider:
    key_file: Path
    cert_file: Path
    server: Server | None = None

    @property
    def certificate(self) -> str:
        return certificate_body(self.cert_file)

    def config(self, *, portal_metadata: str | None = None) -> IdPConfig:
        config: dict[str, Any] = {
            "entityid": IDP_ENTITY_ID,
            "key_file": str(self.key_file),
            "cert_file": str(self.cert_file),
            "xmlsec_binary": "/usr/bin/xmlsec1",
            "service": {
                "idp": {
                    "endpoints": {"single_sign_on_service": [(IDP_SSO_URL, BINDING_HTTP_REDIRECT)]},
                    "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                    "policy": {"default": {"lifetime": {"minutes": 5}, "attribute_restrictions": None}},
                    "want_authn_requests_signed": False,
                }
            },
        }
        if portal_metadata is not None:
            config["metadata"] = {"inline": [portal_metadata]}
        return IdPConfig().load(config)

    def metadata(self) -> str:
        """The IdP's own metadata XML, as an administrator downloads it from the IdP."""
        return create_metadata_string(None, config=self.config(), valid=24, sign=False).decode()

    def trust(self, portal_metadata: str) -> None:
        """The IdP learns the portal (the service provider, its entity id and ACS URL) from its metadata."""
        self.server = Server(config=self.config(portal_metadata=portal_metadata))

    def answer(
        self, redirect_url: str, user_id: str, attributes: dict[str, list[str]], *, sign: bool = True
    ) -> tuple[str, dict[str, str]]:
        """The IdP's answer to the AuthnRequest in `redirect_url` (the portal's redirect to the SSO
        endpoint, HTTP-Redirect binding) for the person the IdP knows as `user_id` (their persistent
        NameID): the ACS URL to post to and the form (SAMLResponse,
        RelayState) to post there, as the IdP's auto-submitting page would (HTTP-POST binding)."""
        assert self.server is not None, "trust() the portal first"
        query = parse_qs(urlsplit(redirect_url).query)
        request = self.server.parse_authn_request(query["SAMLRequest"][0], BINDING_HTTP_REDIRECT).message
        sp_entity_id = request.issuer.text
        response = self.server.create_authn_response(
            identity=attributes,
            in_response_to=request.id,
            destination=request.assertion_consumer_service_url,
            sp_entity_id=sp_entity_id,
            name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=user_id, name_qualifier=IDP_ENTITY_ID),
            authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"},
            sign_assertion=sign,
            sign_response=False,
            binding=BINDING_HTTP_POST,
            # The portal refuses SHA-1 signatures (python3-saml's rejectDeprecatedAlgorithm).
            sign_alg=SIG_RSA_SHA256,
            digest_alg=DIGEST_SHA256,
        )
        form = {"SAMLResponse": base64.b64encode(str(response).encode()).decode()}
        if "RelayState" in query:
            form["RelayState"] = query["RelayState"][0]
        return request.assertion_consumer_service_url, form


@contextmanager
def identity_provider() -> Iterator[IdentityProvider]:
    """The IdP, with a key and certificate of its own for as long as the context lasts."""
    with TemporaryDirectory() as directory:
        key_file, cert_file = key_and_certificate(Path(directory))
        yield IdentityProvider(key_file=key_file, cert_file=cert_file)
