"""Who is in the demo network: its nodes, their machines and the ports they take.

One top-level node (prefix 88), three provincial secondary nodes and (by default) six
enterprise nodes in the seed's key industries; ``network_specs`` and ``machine_names``
size it, ``factory_for`` is an enterprise's simulated plant.  Pure data: nothing here
starts a server (``network.py`` does).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from iinode.errors import ConfigurationError
from iinode.node.settings import Role
from iinode.telemetry.simulator import Factory, MachineSpec, ShiftCalendar

SECRET = "demo-secret"
NOTICE_ID = "CN-NOTICE-2026-001"


@dataclass(frozen=True)
class NodeSpec:
    role: Role
    prefix: str
    name: str
    parent: str | None = None
    industry: str = ""
    province: str = ""


TOP = NodeSpec(Role.TOP, "88", "National top-level node")
PROVINCES = (
    NodeSpec(Role.SECONDARY, "88.118", "Jiangsu provincial node", "88", province="JS"),
    NodeSpec(Role.SECONDARY, "88.120", "Guangdong provincial node", "88", province="GD"),
    NodeSpec(Role.SECONDARY, "88.121", "Hubei provincial node", "88", province="HB"),
)
#: Named enterprises, taken in this order; more are numbered under the provinces in turn.
ENTERPRISES = (
    NodeSpec(Role.ENTERPRISE, "88.118.8", "Changzhou Auto Works", "88.118", "automobiles", "JS"),
    NodeSpec(
        Role.ENTERPRISE, "88.118.9", "Nanjing Petrochemical", "88.118", "petrochemicals", "JS"
    ),
    NodeSpec(
        Role.ENTERPRISE, "88.120.3", "Foshan Home Appliances", "88.120", "home-appliances", "GD"
    ),
    NodeSpec(Role.ENTERPRISE, "88.120.5", "Guangzhou Pharma", "88.120", "medicine", "GD"),
    NodeSpec(Role.ENTERPRISE, "88.121.2", "Wuhan Auto Parts", "88.121", "automobiles", "HB"),
    NodeSpec(Role.ENTERPRISE, "88.121.6", "Yichang Pharmaceutical", "88.121", "medicine", "HB"),
    NodeSpec(
        Role.ENTERPRISE, "88.118.12", "Suzhou Home Appliances", "88.118", "home-appliances", "JS"
    ),
    NodeSpec(
        Role.ENTERPRISE, "88.120.7", "Maoming Petrochemical", "88.120", "petrochemicals", "GD"
    ),
)
DEFAULT_ENTERPRISES = 6
DEFAULT_MACHINES = 3
MAX_ENTERPRISES = 60
MAX_MACHINES = 40
#: The enterprise whose operator acknowledges the notice by hand (``iinode monitor ack``).
MANUAL_ACK = "88.120.5"


def network_specs(enterprises: int = DEFAULT_ENTERPRISES) -> tuple[NodeSpec, ...]:
    """The top, the three provinces and ``enterprises`` enterprises (the named ones first)."""
    if not 1 <= enterprises <= MAX_ENTERPRISES:
        raise ConfigurationError(f"enterprises must be from 1 to {MAX_ENTERPRISES}")
    chosen = list(ENTERPRISES[:enterprises])
    industries = list(EQUIPMENT)
    for n in range(len(chosen), enterprises):
        province = PROVINCES[n % len(PROVINCES)]
        chosen.append(NodeSpec(
            Role.ENTERPRISE, f"{province.prefix}.{100 + n}", f"Enterprise {n + 1}",
            province.prefix, industries[n % len(industries)], province.province,
        ))  # fmt: skip
    return (TOP, *PROVINCES, *chosen)


def machine_names(industry: str, count: int = DEFAULT_MACHINES) -> list[str]:
    """The first machines of the industry by name, then numbered ones of the same kinds."""
    names = EQUIPMENT[industry]
    out = names[:count]
    for n in range(len(out), count):
        stem = names[n % len(names)].rsplit("-", 1)[0]
        out.append(f"{stem}-{n + 1:02d}")
    return out


EQUIPMENT = {
    "automobiles": ["PRESS-01", "WELD-ROBOT-02", "PAINT-LINE-03"],
    "petrochemicals": ["CRACKER-01", "PUMP-07", "COMPRESSOR-02"],
    "home-appliances": ["INJECTION-01", "ASSEMBLY-04", "TESTBENCH-02"],
    "medicine": ["REACTOR-01", "TABLET-PRESS-02", "BLISTER-03"],
}

#: The enterprise whose cell is read over OPC UA (first machine) and Modbus (second).
FIELD_ENTERPRISE = "88.118.8"
FIELD_MACHINES = ("CNC-OPCUA-11", "CNC-MODBUS-12")
#: Ports after the handle ports: the cell's OPC UA and Modbus servers.
FIELD_PORTS = 2

#: Enterprises whose operators acknowledge the demo notice by themselves (every
#: enterprise but ``MANUAL_ACK``; these three are in every network of four or more).
AUTO_ACK = ("88.118.8", "88.118.9", "88.120.3")
#: A GTIN the first enterprise resolves as a GS1 Digital Link (``/01/<gtin>``).
DEMO_GTIN = "09506000134352"
#: Machines per production line of a simulated plant.
LINE_SIZE = 4
#: Default product identifiers the simulated public resolves per second (HTTP and native).
RESOLUTIONS_PER_SECOND = 10.0

NETWORK = network_specs()


def factory_for(spec: NodeSpec, start: datetime, machines: int = DEFAULT_MACHINES) -> Factory:
    """The simulated plant of an enterprise: its industry's machines, always on shift."""
    specs = [
        MachineSpec(id=f"{spec.prefix}/{name}", line=f"{spec.prefix}/LINE-{1 + i // LINE_SIZE}",
                    cycle_s=20.0 + 5 * (i % 6))
        for i, name in enumerate(machine_names(spec.industry, machines))
    ]  # fmt: skip
    return Factory(spec.prefix, specs, seed=int(spec.prefix.replace('.', '')), start=start,
                   calendar=ShiftCalendar())  # fmt: skip


def ports_needed(enterprises: int = DEFAULT_ENTERPRISES) -> int:
    """HTTP ports for every node, one MQTT port per enterprise, a handle port per node,
    then the field cell's OPC UA and Modbus ports."""
    return 2 * len(network_specs(enterprises)) + enterprises + FIELD_PORTS
