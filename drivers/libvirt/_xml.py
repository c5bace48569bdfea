"""Domain XML from a VMSpec, and what we read back out of it. Pure functions."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from .._spec import NicSpec, VMSpec

__all__ = ["WIND_NS", "domain_xml", "parse_domain", "ParsedDomain", "nic_xml"]

#: Namespace of Wind's element inside a domain's <metadata>.
WIND_NS = "urn:wind:vm:1"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, {k.rstrip("_"): v for k, v in attrs.items()})
    if text is not None:
        el.text = text
    return el


def _nic(parent: ET.Element, nic: NicSpec, model: str | None) -> ET.Element:
    if nic.tap:
        iface = _sub(parent, "interface", type="ethernet")
        _sub(iface, "target", dev=nic.tap, managed="no")
    elif nic.bridge:
        iface = _sub(parent, "interface", type="bridge")
        _sub(iface, "source", bridge=nic.bridge)
    else:
        iface = _sub(parent, "interface", type="network")
        _sub(iface, "source", network=nic.network)
    if nic.mac:
        _sub(iface, "mac", address=nic.mac)
    if model:
        _sub(iface, "model", type=model)
    return iface


def nic_xml(nic: NicSpec, *, domain_type: str = "qemu") -> str:
    """The ``<interface>`` element for one NIC (for attachDevice)."""
    holder = ET.Element("x")
    return ET.tostring(_nic(holder, nic, None if domain_type == "test" else "virtio"), encoding="unicode")


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
    test = domain_type == "test"
    dom = ET.Element("domain", {"type": domain_type})
    _sub(dom, "name", spec.name)
    _sub(dom, "memory", str(spec.memory_mb), unit="MiB")
    _sub(dom, "vcpu", str(spec.vcpus))
    meta = _sub(dom, "metadata")
    wind = ET.SubElement(meta, f"{{{WIND_NS}}}vm")
    wind.text = json.dumps(spec.as_dict(), sort_keys=True)
    os_ = _sub(dom, "os")
    _sub(os_, "type", "hvm", **({} if test else {"arch": arch}))
    if spec.kernel:
        _sub(os_, "kernel", spec.kernel)
        if spec.initrd:
            _sub(os_, "initrd", spec.initrd)
        if spec.cmdline:
            _sub(os_, "cmdline", spec.cmdline)
    else:
        _sub(os_, "boot", dev="hd")
    if not test:
        _sub(_sub(dom, "features"), "acpi")
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "restart")
    _sub(dom, "on_crash", "destroy")
    devices = _sub(dom, "devices")
    if spec.image:
        disk = _sub(devices, "disk", type="file", device="disk")
        if not test:
            fmt = "qcow2" if spec.image.endswith(".qcow2") else "raw"
            _sub(disk, "driver", name="qemu", type=fmt)
        _sub(disk, "source", file=spec.image)
        _sub(disk, "target", dev="vda", bus="virtio")
    for nic in spec.nics:
        _nic(devices, nic, None if test else "virtio")
    if spec.console_log:
        serial = _sub(devices, "serial", type="file")
        _sub(serial, "source", path=spec.console_log)
        _sub(serial, "target", port="0")
        console = _sub(devices, "console", type="file")
        _sub(console, "source", path=spec.console_log)
        _sub(console, "target", type="serial", port="0")
    if not test:
        _sub(devices, "memballoon", model="none")
    ET.register_namespace("wind", WIND_NS)
    return ET.tostring(dom, encoding="unicode")


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
