"""The server's TLS context: TLS 1.2 and 1.3 only, the certificate and key from settings, and
client certificates optional but verified against the configured CA bundles (a phone without
one still gets a TLS connection and proves itself otherwise)."""

from __future__ import annotations

import ssl

from provisioning.settings import PREFIX, Settings, SettingsError


def server_context(settings: Settings) -> ssl.SSLContext:
    if settings.tls_cert is None or settings.tls_key is None:
        raise SettingsError(f"{PREFIX}TLS_CERT and {PREFIX}TLS_KEY are needed to serve HTTPS")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(
            f"{PREFIX}TLS_CERT, {PREFIX}TLS_KEY: cannot load the certificate and key "
            f"({getattr(exc, 'reason', None) or exc.__class__.__name__})"
        ) from None
    if settings.client_cas:
        for name, path in settings.client_cas:
            try:
                context.load_verify_locations(cafile=str(path))
            except (OSError, ssl.SSLError):
                raise SettingsError(
                    f"{PREFIX}CLIENT_CAS: {name}={path} is not a PEM certificate bundle"
                ) from None
        # Optional: phones without a factory certificate still connect; one that presents a
        # certificate no configured CA vouches for fails the handshake.
        context.verify_mode = ssl.CERT_OPTIONAL
    return context
