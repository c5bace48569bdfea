"""Building a libcloud node driver for a :class:`CloudConfig`.

Provider quirks live here and nowhere else:

- EC2 against an endpoint override needs SigV4 (``signature_version="4"``),
  and moto answers with the EC2 XML namespace *without* its trailing slash
  (``http://ec2.amazonaws.com/doc/2016-11-15``) and puts that namespace on
  error documents too. libcloud looks elements up in the namespace *with*
  the slash and error codes with none, so the response class below
  normalizes both. Real AWS responses already have that form and pass
  through unchanged.
- OpenStack takes its Keystone URL and tenant/region through ``ex_*`` arguments.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urlsplit

from libcloud.common.types import InvalidCredsError
from libcloud.compute.base import NodeDriver
from libcloud.compute.drivers.ec2 import NAMESPACE, EC2Connection, EC2NodeDriver, EC2Response
from libcloud.compute.providers import get_driver

from ._config import CloudConfig

__all__ = ["build_node_driver"]

_NS_NO_SLASH = f'xmlns="{NAMESPACE.rstrip("/")}"'
_NS_WITH_SLASH = f'xmlns="{NAMESPACE}"'
_ANY_XMLNS = re.compile(r'\sxmlns="[^"]*"')
_AUTH_CODES = frozenset({"AuthFailure", "InvalidClientTokenId", "SignatureDoesNotMatch", "OptInRequired",
                         "UnrecognizedClientException", "InvalidAccessKeyId"})


class _EC2Response(EC2Response):
    def parse_body(self) -> Any:
        if isinstance(self.body, str):
            self.body = self.body.replace(_NS_NO_SLASH, _NS_WITH_SLASH)
        return super().parse_body()

    def parse_error(self) -> Any:
        # libcloud's EC2Response expects un-namespaced <Response><Errors><Error>
        # with exactly Code and Message; moto adds a namespace, an <ErrorResponse>
        # root and a <Type>. Read Code/Message by name instead.
        body = self.body if isinstance(self.body, str) else self.body.decode(errors="replace")
        try:
            root = ET.fromstring(_ANY_XMLNS.sub("", body, count=1))
        except ET.ParseError:
            return super().parse_error()
        errors = []
        for err in root.iter("Error"):
            code, message = err.findtext("Code") or "", err.findtext("Message") or ""
            if code in _AUTH_CODES:
                raise InvalidCredsError(f"{code}: {message}")
            errors.append(f"{code}: {message}")
        return "\n".join(errors) or body


class _EC2Connection(EC2Connection):
    responseCls = _EC2Response


class _EC2NodeDriver(EC2NodeDriver):
    connectionCls = _EC2Connection


def build_node_driver(config: CloudConfig, timeout: float = 30.0) -> NodeDriver:
    """A libcloud NodeDriver for the configured provider (no request is made yet).

    Args:
        config: the endpoint's configuration.
        timeout: per-request socket timeout in seconds.

    Returns:
        The libcloud driver.

    Raises:
        ValueError, AttributeError: from libcloud for an unknown provider or
            region (the caller translates them).
    """
    kwargs: dict[str, Any] = dict(config.extra)
    kwargs.setdefault("timeout", timeout)
    key, secret = config.key, config.secret.reveal()
    if config.provider == "ec2":
        if config.region:
            kwargs["region"] = config.region
        if config.endpoint:
            parts = urlsplit(config.endpoint)
            kwargs.update(host=parts.hostname, port=parts.port or (443 if parts.scheme == "https" else 80),
                          secure=parts.scheme == "https")
            kwargs.setdefault("signature_version", "4")
        return _EC2NodeDriver(key, secret, **kwargs)
    cls = get_driver(config.provider)
    if config.provider == "openstack":
        if config.endpoint:
            kwargs.setdefault("ex_force_auth_url", config.endpoint)
            kwargs.setdefault("secure", urlsplit(config.endpoint).scheme == "https")
        kwargs.setdefault("ex_force_auth_version", "2.0_password")
        if config.region:
            kwargs.setdefault("ex_force_service_region", config.region)
        return cls(key, secret, **kwargs)
    if config.region:
        kwargs.setdefault("region", config.region)
    if config.endpoint:
        parts = urlsplit(config.endpoint)
        kwargs.update(host=parts.hostname, port=parts.port, secure=parts.scheme == "https")
    return cls(key, secret, **kwargs)
