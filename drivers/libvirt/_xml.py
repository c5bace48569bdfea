"""Domain XML from a VMSpec, and what we read back out of it. Pure functions."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from .._spec import NicSpec, VMSpec

__all__ = ["WIND_NS", "domain_xml", "parse_domain", "ParsedDomain", "nic_xml"]

#: Namespace of Wind's element inside a domain's <metadata>.
WIND_NS = "urn:wind:vm:1"

# json.dumps(..., sort_keys=True) builds a new encoder on every call, which
# cost as much as the encoding; one shared encoder is stateless and thread-safe.
_SPEC_ENCODER = json.JSONEncoder(sort_keys=True)


def _a(value: str) -> str:
    """An XML attribute value, quoted and escaped."""
    return quoteattr(value)


def _nic(nic: NicSpec, model: str | None) -> str:
    if nic.tap:
        head, src = "<interface type='ethernet'>", f"<target dev={_a(nic.tap)} managed='no'/>"
    elif nic.bridge:
        head, src = "<interface type='bridge'>", f"<source bridge={_a(nic.bridge)}/>"
    else:
        head, src = "<interface type='network'>", f"<source network={_a(nic.network)}/>"
    mac = f"<mac address={_a(nic.mac)}/>" if nic.mac else ""
    mod = f"<model type={_a(model)}/>" if model else ""
    return f"{head}{src}{mac}{mod}</interface>"


def nic_xml(nic: NicSpec, *, domain_type: str = "qemu") -> str:
    """The ``<interface>`` element for one NIC (for attachDevice)."""
    return _nic(nic, None if domain_type == "test" else "virtio")


def domain_xml(spec: VMSpec, *, domain_type: str = "qemu", arch: str = "x86_64") -> str:
    """Libvirt domain XML for a spec.

    Args:
        spec: the VM.
        domain_type: ``test`` (libvirt's test driver), ``qemu`` (TCG) or ``kvm``.
        arch: guest architecture (ignored for ``test``).

    Returns:
        The XML. The whole spec is kept in ``<metadata>`` (namespace
        :data:`WIND_NS`) so the driver can return NIC networks and labels later.
    """
    # Built as text, not with ElementTree: it is on every define's path and
    # ElementTree serialisation cost more than libvirt's own defineXML.
    test = domain_type == "test"
    stored = escape(_SPEC_ENCODER.encode(spec.as_dict()))
    os_type = "<type>hvm</type>" if test else f"<type arch={_a(arch)}>hvm</type>"
    if spec.kernel:
        boot = f"<kernel>{escape(spec.kernel)}</kernel>"
        boot += f"<initrd>{escape(spec.initrd)}</initrd>" if spec.initrd else ""
        boot += f"<cmdline>{escape(spec.cmdline)}</cmdline>" if spec.cmdline else ""
    else:
        boot = "<boot dev='hd'/>"
    devices = []
    if spec.image:
        drv = "" if test else (f"<driver name='qemu' type="
                               f"'{'qcow2' if spec.image.endswith('.qcow2') else 'raw'}'/>")
        devices.append(f"<disk type='file' device='disk'>{drv}<source file={_a(spec.image)}/>"
                       "<target dev='vda' bus='virtio'/></disk>")
    devices.extend(_nic(n, None if test else "virtio") for n in spec.nics)
    if spec.console_log:
        path = _a(spec.console_log)
        devices.append(f"<serial type='file'><source path={path}/><target port='0'/></serial>"
                       f"<console type='file'><source path={path}/><target type='serial' port='0'/></console>")
    if not test:
        devices.append("<memballoon model='none'/>")
    return (
        f"<domain type={_a(domain_type)}><name>{escape(spec.name)}</name>"
        f"<memory unit='MiB'>{spec.memory_mb}</memory><vcpu>{spec.vcpus}</vcpu>"
        f"<metadata><wind:vm xmlns:wind='{WIND_NS}'>{stored}</wind:vm></metadata>"
        f"<os>{os_type}{boot}</os>{'' if test else '<features><acpi/></features>'}"
        "<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>"
        f"<devices>{''.join(devices)}</devices></domain>"
    )


@dataclass(frozen=True)
class ParsedDomain:
    """What we read back from a domain's XML."""

    spec: dict[str, Any] | None  #: the VMSpec as_dict() Wind stored, None for foreign domains
    nics: tuple[NicSpec, ...]
    console_log: str | None


def parse_domain(xml: str) -> ParsedDomain:
    """Read Wind's stored spec, the live NICs and the console file from domain XML."""
    root = ET.fromstring(xml)
    stored = root.find(f"metadata/{{{WIND_NS}}}vm")
    spec = json.loads(stored.text) if stored is not None and stored.text else None
    wanted = list(spec.get("nics", ())) if spec else []
    nics = []
    for i, iface in enumerate(root.findall("devices/interface")):
        mac_el, src, tgt = iface.find("mac"), iface.find("source"), iface.find("target")
        mac = mac_el.get("address") if mac_el is not None else None
        kind = iface.get("type")
        bridge = src.get("bridge") if src is not None and kind == "bridge" else None
        tap = tgt.get("dev") if tgt is not None and kind == "ethernet" else None
        net = wanted[i]["network"] if i < len(wanted) else (
            (src.get("network") or src.get("bridge")) if src is not None else None) or tap or "unknown"
        nics.append(NicSpec(net, mac, bridge, tap))
    serial_src = root.find("devices/serial[@type='file']/source")
    return ParsedDomain(spec, tuple(nics), serial_src.get("path") if serial_src is not None else None)
