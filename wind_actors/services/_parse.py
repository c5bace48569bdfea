"""Parse and validate a YAML application descriptor, collecting every problem.

The grammar (unknown keys anywhere are problems, so a typo is never silently ignored)::

    tenant: acme                      # [a-z][a-z0-9-]{0,31}
    application: web                  # same form
    placement:                        # optional, application-wide
      policy: spread                  # binpack (default) | spread
      where: {labels: {zone: eu}}     # AND-ed with each component's where
    networks:
      front: {cidr: 10.20.0.0/24}
    components:
      frontend:
        image: debian-12              # or kernel: /path [initrd: /path] [cmdline: "..."]
        vcpus: 1                      # 1..1024           (default 1)
        memory_mb: 256                # 16..4194304       (default 512)
        disk_gb: 2                    # 0..65536          (default 0)
        count: 3                      # 0..100000         (default 1)
        restart: always               # always (default) | on-failure | never
        networks: [front]
        placement:
          where: {sites: [a], regions: [eu], labels: {k: v}, drivers: [libvirt], kinds: [hypervisor]}
          affinity: [db]              # or [{component: db, scope: host|site|region}]
          anti_affinity: [frontend]   # scope defaults to site
          spread: {over: site|region, weights: {eu: 2, us: 1}}
          max_latency_ms: [{component: db, ms: 20}, {site: hq, ms: 50}]
    scaling:                          # validated now, refused as not supported yet
      frontend: {min: 2, max: 10, metric: cpu|memory, target_percent: 70}
    schedules:                        # validated now, refused as not supported yet
      - {cron: "0 8 * * 1-5", action: scale|deploy|undeploy, component: frontend, count: 6}
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..errors import DescriptorInvalid, NotSupportedYet
from ._descriptor import (
    POLICIES, RESTART_POLICIES, SCOPES, SITE_KINDS, SPREAD_OVER, AppDescriptor, Component,
    ComponentPlacement, LatencyBound, Network, Problem, Relation, Spread, Where,
)

__all__ = ["parse_descriptor", "load_descriptor"]

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_NAME_RULE = "a name matching [a-z][a-z0-9-]{0,31}"
_SITE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
_TOP = ("tenant", "application", "placement", "networks", "components", "scaling", "schedules")
_COMPONENT = ("image", "kernel", "initrd", "cmdline", "vcpus", "memory_mb", "disk_gb", "count",
              "restart", "networks", "placement")
_WHERE = ("sites", "regions", "labels", "drivers", "kinds")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Checker:
    """Collects problems while reading a document; every reader returns a usable default."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def bad(self, path: str, found: Any, allowed: str) -> None:
        if found is None:
            found = "<missing>"
        self.problems.append(Problem(path, found if isinstance(found, str) and found.startswith("<")
                                     else _show(found), allowed))

    def mapping(self, value: Any, path: str, keys: tuple[str, ...] | None = None) -> Mapping:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.bad(path, value, "a mapping")
            return {}
        for key in value:
            if not isinstance(key, str):
                self.bad(f"{path}.{key}", key, "string keys")
            elif keys is not None and key not in keys:
                self.bad(f"{path}.{key}" if path else key, "<unknown key>", ", ".join(keys))
        return value

    def name(self, value: Any, path: str) -> str:
        if isinstance(value, str) and _NAME.match(value):
            return value
        self.bad(path, value if value is not None else "<missing>", _NAME_RULE)
        return "invalid"

    def integer(self, value: Any, path: str, lo: int, hi: int) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi:
            return value
        self.bad(path, value, f"an integer from {lo} to {hi}")
        return lo

    def number(self, value: Any, path: str, lo: float, hi: float, *, exclusive_lo: bool = False) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and (value > lo if exclusive_lo else value >= lo) and value <= hi:
            return float(value)
        self.bad(path, value, f"a number {'>' if exclusive_lo else '>='} {lo} and <= {hi}")
        return float(hi)

    def choice(self, value: Any, path: str, allowed: tuple[str, ...]) -> str:
        if value in allowed:
            return value
        self.bad(path, value, " | ".join(allowed))
        return allowed[0]

    def text(self, value: Any, path: str) -> str | None:
        if value is None:
            return None
        if isinstance(value, str) and value.strip():
            return value
        self.bad(path, value, "a non-empty string")
        return None

    def strings(self, value: Any, path: str, pattern: re.Pattern | None = None,
                rule: str = "a list of strings") -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.bad(path, value, rule)
            return ()
        out = []
        for i, item in enumerate(value):
            if isinstance(item, str) and (pattern is None or pattern.match(item)):
                out.append(item)
            else:
                self.bad(f"{path}[{i}]", item, rule)
        return tuple(out)


def parse_descriptor(source: str | bytes | Mapping[str, Any], *, origin: str | None = None,
                     allow_unsupported: bool = False) -> AppDescriptor:
    """Validate a descriptor and return it, or reject it with every problem listed.

    Args:
        source: YAML text, or an already-parsed mapping.
        origin: where it came from (a file name), put in the error's context.
        allow_unsupported: accept ``scaling``/``schedules`` (for the issues that implement them).

    Returns:
        The validated ``AppDescriptor``.

    Raises:
        DescriptorInvalid: with ``.problems``, every problem found.
        NotSupportedYet: the descriptor is valid but has ``scaling`` or ``schedules``.
    """
    ctx = {"source": origin} if origin else {}
    doc: Any = source
    if isinstance(source, (str, bytes)):
        try:
            doc = yaml.safe_load(source)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"<YAML syntax error at line {mark.line + 1}>" if mark else "<YAML syntax error>"
            raise DescriptorInvalid([Problem("(document)", where, "valid YAML")], **ctx) from None
    chk = _Checker()
    if not isinstance(doc, Mapping):
        raise DescriptorInvalid([Problem("(document)", _show(doc), "a mapping at the top level")], **ctx)
    chk.mapping(doc, "", _TOP)
    tenant = chk.name(doc.get("tenant"), "tenant")
    name = chk.name(doc.get("application"), "application")
    app_place = chk.mapping(doc.get("placement"), "placement", ("policy", "where"))
    policy = chk.choice(app_place.get("policy", "binpack"), "placement.policy", POLICIES)
    app_where = _where(chk, app_place.get("where"), "placement.where")
    networks = _networks(chk, doc.get("networks"))
    # Names count as declared even when their CIDR is bad: that problem is reported once, there.
    net_names = {str(k) for k in doc["networks"]} if isinstance(doc.get("networks"), Mapping) else set()
    comps_doc = doc.get("components")
    if not isinstance(comps_doc, Mapping) or not comps_doc:
        chk.bad("components", comps_doc if comps_doc is not None else "<missing>",
                "a non-empty mapping of component name to component")
        comps_doc = {}
    components = tuple(_component(chk, cname, spec, net_names) for cname, spec in comps_doc.items())
    comp_names = {c.name for c in components}
    for comp in components:
        _check_references(chk, comp, comp_names)
    scaling = _scaling(chk, doc.get("scaling"), comp_names) if "scaling" in doc else None
    schedules = _schedules(chk, doc.get("schedules"), comp_names) if "schedules" in doc else None
    if chk.problems:
        raise DescriptorInvalid(chk.problems, **ctx)
    if not allow_unsupported:
        unsupported = [s for s in ("scaling", "schedules") if s in doc]
        if unsupported:
            raise NotSupportedYet(unsupported, tenant=tenant, app=name, **ctx)
    return AppDescriptor(tenant=tenant, name=name, components=components, networks=networks,
                         policy=policy, where=app_where, scaling=scaling, schedules=schedules,
                         raw=dict(doc))


def load_descriptor(path: str | Path, *, allow_unsupported: bool = False) -> AppDescriptor:
    """Read and validate a descriptor file (see ``parse_descriptor``)."""
    text = Path(path).read_text(encoding="utf-8")
    return parse_descriptor(text, origin=str(path), allow_unsupported=allow_unsupported)


def _networks(chk: _Checker, value: Any, path: str = "networks") -> tuple[Network, ...]:
    out: list[Network] = []
    seen: list[tuple[str, Any]] = []
    for net_name, spec in chk.mapping(value, path).items():
        npath = f"{path}.{net_name}"
        nname = chk.name(net_name, npath)
        spec = chk.mapping(spec, npath, ("cidr",))
        cidr = spec.get("cidr")
        try:
            net = ipaddress.ip_network(cidr, strict=True) if isinstance(cidr, str) else None
        except ValueError:
            net = None
        if net is None:
            chk.bad(f"{npath}.cidr", cidr if cidr is not None else "<missing>",
                    "a network CIDR with no host bits set, e.g. 10.20.0.0/24")
            continue
        if net.num_addresses < 4:
            chk.bad(f"{npath}.cidr", cidr, "a prefix leaving room for hosts (/30 or shorter)")
        for other, onet in seen:
            if onet.version == net.version and onet.overlaps(net):
                chk.bad(f"{npath}.cidr", cidr, f"a CIDR not overlapping network {other!r} ({onet})")
        seen.append((nname, net))
        out.append(Network(nname, str(net)))
    return tuple(out)


def _component(chk: _Checker, cname: Any, spec: Any, net_names: set[str]) -> Component:
    path = f"components.{cname}"
    name = chk.name(cname, path)
    spec = chk.mapping(spec, path, _COMPONENT)
    image = chk.text(spec.get("image"), f"{path}.image")
    kernel = chk.text(spec.get("kernel"), f"{path}.kernel")
    initrd = chk.text(spec.get("initrd"), f"{path}.initrd")
    cmdline = chk.text(spec.get("cmdline"), f"{path}.cmdline")
    if "image" in spec and "kernel" in spec:
        chk.bad(path, "<both image and kernel>", "exactly one of image or kernel")
    elif "image" not in spec and "kernel" not in spec:
        chk.bad(path, "<neither image nor kernel>", "exactly one of image or kernel")
    if kernel is None and (initrd or cmdline):
        chk.bad(f"{path}.initrd" if initrd else f"{path}.cmdline", "<without kernel>",
                "initrd and cmdline only together with kernel")
    networks = chk.strings(spec.get("networks"), f"{path}.networks", _NAME,
                           "a list of network names declared under networks")
    for i, net in enumerate(networks):
        if net not in net_names:
            chk.bad(f"{path}.networks[{i}]", net,
                    f"one of the declared networks ({', '.join(sorted(net_names)) or 'none declared'})")
    return Component(
        name=name,
        vcpus=chk.integer(spec.get("vcpus", 1), f"{path}.vcpus", 1, 1024),
        memory_mb=chk.integer(spec.get("memory_mb", 512), f"{path}.memory_mb", 16, 4 * 1024 * 1024),
        disk_gb=chk.integer(spec.get("disk_gb", 0), f"{path}.disk_gb", 0, 65536),
        count=chk.integer(spec.get("count", 1), f"{path}.count", 0, 100_000),
        restart=chk.choice(spec.get("restart", "always"), f"{path}.restart", RESTART_POLICIES),
        image=image, kernel=kernel, initrd=initrd, cmdline=cmdline, networks=networks,
        placement=_placement(chk, spec.get("placement"), f"{path}.placement"),
    )


def _placement(chk: _Checker, value: Any, path: str) -> ComponentPlacement:
    spec = chk.mapping(value, path, ("where", "affinity", "anti_affinity", "spread", "max_latency_ms"))
    return ComponentPlacement(
        where=_where(chk, spec.get("where"), f"{path}.where"),
        affinity=_relations(chk, spec.get("affinity"), f"{path}.affinity"),
        anti_affinity=_relations(chk, spec.get("anti_affinity"), f"{path}.anti_affinity"),
        spread=_spread(chk, spec.get("spread"), f"{path}.spread") if "spread" in spec else None,
        max_latency=_latency(chk, spec.get("max_latency_ms"), f"{path}.max_latency_ms"),
    )


def _where(chk: _Checker, value: Any, path: str) -> Where:
    spec = chk.mapping(value, path, _WHERE)
    labels = []
    for key, val in chk.mapping(spec.get("labels"), f"{path}.labels").items():
        if isinstance(val, bool) or not isinstance(val, (str, int, float)):
            chk.bad(f"{path}.labels.{key}", val, "a string label value")
            continue
        labels.append((str(key), str(val)))
    kinds = chk.strings(spec.get("kinds"), f"{path}.kinds")
    for i, kind in enumerate(kinds):
        if kind not in SITE_KINDS:
            chk.bad(f"{path}.kinds[{i}]", kind, " | ".join(SITE_KINDS))
    return Where(
        sites=chk.strings(spec.get("sites"), f"{path}.sites", _SITE, "a list of site names"),
        regions=chk.strings(spec.get("regions"), f"{path}.regions", _SITE, "a list of region names"),
        labels=tuple(sorted(labels)),
        drivers=chk.strings(spec.get("drivers"), f"{path}.drivers", _NAME, "a list of driver names"),
        kinds=kinds,
    )


def _relations(chk: _Checker, value: Any, path: str) -> tuple[Relation, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        chk.bad(path, value, "a list of component names or {component, scope} mappings")
        return ()
    out = []
    for i, item in enumerate(value):
        ipath = f"{path}[{i}]"
        if isinstance(item, str):
            out.append(Relation(chk.name(item, ipath)))
            continue
        spec = chk.mapping(item, ipath, ("component", "scope"))
        if spec:
            out.append(Relation(chk.name(spec.get("component"), f"{ipath}.component"),
                                chk.choice(spec.get("scope", "site"), f"{ipath}.scope", SCOPES)))
    return tuple(out)


def _spread(chk: _Checker, value: Any, path: str) -> Spread:
    spec = chk.mapping(value, path, ("over", "weights"))
    weights = []
    for key, weight in chk.mapping(spec.get("weights"), f"{path}.weights").items():
        weights.append((str(key), chk.number(weight, f"{path}.weights.{key}", 0, 1e6, exclusive_lo=True)))
    return Spread(over=chk.choice(spec.get("over", "site"), f"{path}.over", SPREAD_OVER),
                  weights=tuple(sorted(weights)))


def _latency(chk: _Checker, value: Any, path: str) -> tuple[LatencyBound, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        chk.bad(path, value, "a list of {component: NAME, ms: N} or {site: NAME, ms: N}")
        return ()
    out = []
    for i, item in enumerate(value):
        ipath = f"{path}[{i}]"
        spec = chk.mapping(item, ipath, ("component", "site", "ms"))
        if not spec:
            continue
        ms = chk.number(spec.get("ms"), f"{ipath}.ms", 0, 1e6)
        if ("component" in spec) == ("site" in spec):
            chk.bad(ipath, "<both or neither of component and site>", "exactly one of component or site")
            continue
        if "component" in spec:
            out.append(LatencyBound(ms, component=chk.name(spec["component"], f"{ipath}.component")))
        elif isinstance(spec["site"], str) and _SITE.match(spec["site"]):
            out.append(LatencyBound(ms, site=spec["site"]))
        else:
            chk.bad(f"{ipath}.site", spec["site"], "a site name")
    return tuple(out)


def _check_references(chk: _Checker, comp: Component, names: set[str]) -> None:
    path = f"components.{comp.name}.placement"
    allowed = f"one of the components ({', '.join(sorted(names))})"
    for key, rels in (("affinity", comp.placement.affinity), ("anti_affinity", comp.placement.anti_affinity)):
        for i, rel in enumerate(rels):
            if rel.component not in names and rel.component != "invalid":
                chk.bad(f"{path}.{key}[{i}]", rel.component, allowed)
    for i, bound in enumerate(comp.placement.max_latency):
        if bound.component is not None and bound.component not in names and bound.component != "invalid":
            chk.bad(f"{path}.max_latency_ms[{i}].component", bound.component, allowed)


def _scaling(chk: _Checker, value: Any, names: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cname, spec in chk.mapping(value, "scaling").items():
        path = f"scaling.{cname}"
        if cname not in names:
            chk.bad(path, cname, f"one of the components ({', '.join(sorted(names))})")
        spec = chk.mapping(spec, path, ("min", "max", "metric", "target_percent"))
        lo = chk.integer(spec.get("min", 1), f"{path}.min", 0, 100_000)
        hi = chk.integer(spec.get("max"), f"{path}.max", 0, 100_000)
        if lo > hi:
            chk.bad(f"{path}.min", lo, f"at most max ({hi})")
        out[str(cname)] = {
            "min": lo, "max": hi,
            "metric": chk.choice(spec.get("metric", "cpu"), f"{path}.metric", ("cpu", "memory")),
            "target_percent": chk.integer(spec.get("target_percent", 70), f"{path}.target_percent", 1, 100),
        }
    return out


def _schedules(chk: _Checker, value: Any, names: set[str]) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list):
        chk.bad("schedules", value, "a list of {cron, action, component?, count?}")
        return ()
    out = []
    for i, item in enumerate(value):
        path = f"schedules[{i}]"
        spec = chk.mapping(item, path, ("cron", "action", "component", "count"))
        cron = spec.get("cron")
        if not isinstance(cron, str) or len(cron.split()) != 5:
            chk.bad(f"{path}.cron", cron if cron is not None else "<missing>",
                    "a 5-field cron expression, e.g. '0 8 * * 1-5'")
        action = chk.choice(spec.get("action"), f"{path}.action", ("scale", "deploy", "undeploy"))
        entry: dict[str, Any] = {"cron": cron, "action": action}
        if spec.get("action") == "scale":
            comp = spec.get("component")
            if comp not in names:
                chk.bad(f"{path}.component", comp if comp is not None else "<missing>",
                        f"one of the components ({', '.join(sorted(names))})")
            entry["component"] = comp
            entry["count"] = chk.integer(spec.get("count"), f"{path}.count", 0, 100_000)
        out.append(entry)
    return tuple(out)
