"""Kernel device names Wind owns: ``wb-`` (bridge) / ``wx-`` (VXLAN) + six hex digits of the VNI.

Linux limits interface names to 15 characters; ``wb-00a3f1`` is nine, fixed
width, and names the VNI it carries, so names are unique per site (VNIs are
unique per plan) and the realizer can recognise its own devices with a strict
pattern. A device that merely starts with ``wb-`` (say ``wb-user``) is not
Wind's and is never touched.
"""

from __future__ import annotations

import re

VNI_MIN = 1
VNI_MAX = 0xFFFFFF  # 24-bit VXLAN network identifier

BRIDGE_PREFIX = "wb-"
VXLAN_PREFIX = "wx-"

_OWNED = re.compile(r"^w([bx])-([0-9a-f]{6})$")


def bridge_name(vni: int) -> str:
    """Return the name of the bridge carrying ``vni`` at every site (the VM attach point).

    Args:
        vni: a VXLAN network identifier in ``[VNI_MIN, VNI_MAX]``.

    Returns:
        ``"wb-"`` followed by the VNI as six lowercase hex digits.
    """
    return f"{BRIDGE_PREFIX}{vni:06x}"


def vxlan_name(vni: int) -> str:
    """Return the name of the VXLAN device for ``vni`` (enslaved to :func:`bridge_name`)."""
    return f"{VXLAN_PREFIX}{vni:06x}"


def parse_owned(ifname: str) -> tuple[str, int] | None:
    """Classify a device name.

    Returns:
        ``("bridge", vni)`` or ``("vxlan", vni)`` for a device Wind owns,
        ``None`` for any other device.
    """
    match = _OWNED.match(ifname)
    if match is None:
        return None
    return ("bridge" if match.group(1) == "b" else "vxlan", int(match.group(2), 16))
