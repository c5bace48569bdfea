"""The libvirt driver: any libvirt URI, domain XML from VMSpec, events through libvirt's event loop."""

from ._driver import LibvirtDriver
from ._eventloop import ensure_event_loop, event_loop_thread
from ._xml import domain_xml

__all__ = ["LibvirtDriver", "domain_xml", "ensure_event_loop", "event_loop_thread"]
