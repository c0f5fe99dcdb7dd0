"""Self-monitoring: a metrics registry per node, collectors, pure text exposition.

Each node owns one ``CollectorRegistry`` (never the process-global default one),
so that several nodes can live in one process, as they do in ``iinode demo``.
Values that already exist elsewhere (store size, outbox depth, connector state)
are read at scrape time by ``CallbackCollector`` instead of being copied into
gauges.  ``render`` is a pure function from a registry to the Prometheus text
format; the HTTP adapter lives in ``iinode.api.monitoring``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_LATEST

#: A sample source: label values (in ``labels`` order) mapped to a value.
Samples = Mapping[tuple[str, ...], float]


def new_registry() -> CollectorRegistry:
    """A fresh registry for one node."""
    return CollectorRegistry(auto_describe=True)


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition (version 0.0.4) of everything in ``registry``."""
    return generate_latest(registry)


@dataclass(frozen=True, slots=True)
class CallbackCollector(Collector):
    """A gauge (or counter) family whose samples are read from a callable at every scrape.

    ``read`` returns either a single number (when ``labels`` is empty) or a
    mapping from label-value tuples to numbers.  With ``counter`` the family is
    a counter (``<name>_total``): for totals owned elsewhere that only go up.
    An exception in ``read`` is not swallowed: a scrape that cannot read the
    value fails loudly.
    """

    name: str
    documentation: str
    read: Callable[[], float | Samples]
    labels: tuple[str, ...] = ()
    counter: bool = False

    def _family(self) -> CounterMetricFamily | GaugeMetricFamily:
        kind = CounterMetricFamily if self.counter else GaugeMetricFamily
        return kind(self.name, self.documentation, labels=list(self.labels))

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        value = self.read()
        if isinstance(value, int | float):
            if self.labels:
                raise TypeError(f"{self.name}: labelled collector returned a bare number")
            family.add_metric([], float(value))
        else:
            for key, sample in sorted(value.items()):
                if len(key) != len(self.labels):
                    raise TypeError(f"{self.name}: label values {key!r} do not match labels")
                family.add_metric(list(key), float(sample))
        yield family

    def describe(self) -> Iterable[Metric]:
        return [self._family()]


#: Help texts of the native protocol server's node-wide counters, by the names
#: ``iinode.resolution.read_native_counters`` returns (``NativeCounters`` fields).
NATIVE_COUNTER_HELP: Mapping[str, str] = {
    "requests": "Native protocol requests received, all worker processes.",
    "fast_hits": "Native UDP requests answered from the fast-path answer cache.",
    "protocol_errors": "Native protocol messages that did not parse (PROTOCOL_ERROR or closed).",
    "dropped": "Native datagrams dropped (not packets, responses, or the slow path was full).",
    "auth_failures": "Native challenge answers and session MACs refused.",
    "internal_errors": "Native requests that failed inside the server.",
    "sessions_opened": "Native protocol sessions set up.",
}


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity, as the registry needs
class CounterGroupCollector(Collector):
    """Counter families whose totals are read together from one callable at every scrape.

    For totals kept outside this process's registry that only go up (the native
    workers' shared counter block): ``read`` returns ``{name: total}`` and each
    name becomes the counter ``<prefix>_<name>_total``, with its help text from
    ``documentation`` (names it lacks get a generic one).  Documented names that
    ``read`` does not return are exposed as 0.  Exceptions in ``read`` propagate.
    """

    prefix: str
    read: Callable[[], Mapping[str, float]]
    documentation: Mapping[str, str]

    def _family(self, name: str, value: float | None = None) -> CounterMetricFamily:
        help_text = self.documentation.get(name) or f"{self.prefix} counter {name}."
        return CounterMetricFamily(f"{self.prefix}_{name}", help_text, value=value)

    def collect(self) -> Iterator[Metric]:
        totals = self.read()
        extra = sorted(set(totals) - set(self.documentation))
        for name in [*self.documentation, *extra]:
            yield self._family(name, float(totals.get(name, 0)))

    def describe(self) -> Iterable[Metric]:
        return [self._family(name) for name in self.documentation]


@dataclass(slots=True)
class NodeMetrics:
    """The node-wide metric families every component reports into.

    Components receive this object (injected) and update its families; nothing
    reaches for a global.  Gauges whose truth lives elsewhere are added with
    ``add_callback``.
    """

    registry: CollectorRegistry = field(default_factory=new_registry)
    resolutions: Counter = field(init=False)
    resolution_errors: Counter = field(init=False)
    resolution_seconds: Histogram = field(init=False)
    connector_up: Gauge = field(init=False)
    reports_received: Counter = field(init=False)
    reports_refused: Counter = field(init=False)
    events_accepted: Counter = field(init=False)
    events_duplicate: Counter = field(init=False)
    events_enqueued: Counter = field(init=False)
    outbox_full: Counter = field(init=False)
    batches_sent: Counter = field(init=False)
    events_sent: Counter = field(init=False)
    clock_skew: Gauge = field(init=False)
    dead_letters: Counter = field(init=False)
    parent_refusing: Gauge = field(init=False)
    task_failures: Counter = field(init=False)
    notices_invalid: Counter = field(init=False)
    label_mismatches: Counter = field(init=False)

    def __post_init__(self) -> None:
        r = self.registry
        self.resolutions = Counter(
            "iinode_resolutions", "Handle resolutions answered.", ["transport"], registry=r
        )
        self.resolution_errors = Counter(
            "iinode_resolution_errors", "Resolutions answered with an error.", ["code"], registry=r
        )
        self.resolution_seconds = Histogram(
            "iinode_resolution_seconds",
            "Time to answer one resolution.",
            buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0),
            registry=r,
        )
        self.connector_up = Gauge(
            "iinode_connector_up",
            "1 if a connector is connected, else 0.",
            ["connector"],
            registry=r,
        )
        self.reports_received = Counter(
            "iinode_monitoring_reports_received", "Report batches accepted.", ["child"], registry=r
        )
        self.reports_refused = Counter(
            "iinode_monitoring_reports_refused", "Report batches refused.", ["reason"], registry=r
        )
        self.events_accepted = Counter(
            "iinode_monitoring_events_accepted", "New events stored from children.", registry=r
        )
        self.events_duplicate = Counter(
            "iinode_monitoring_events_duplicate",
            "Events received again and ignored (already stored).",
            registry=r,
        )
        self.events_enqueued = Counter(
            "iinode_monitoring_events_enqueued", "Events written to the outbox.", registry=r
        )
        self.outbox_full = Counter(
            "iinode_monitoring_outbox_full",
            "Enqueue attempts refused because the outbox reached its bound.",
            registry=r,
        )
        self.batches_sent = Counter(
            "iinode_monitoring_batches_sent", "Report batches sent upward.", ["result"], registry=r
        )
        self.events_sent = Counter(
            "iinode_monitoring_events_sent", "Events acknowledged by the parent.", registry=r
        )
        self.clock_skew = Gauge(
            "iinode_monitoring_clock_skew_seconds",
            "Last measured clock offset of a peer (peer minus us).",
            ["peer"],
            registry=r,
        )
        self.dead_letters = Counter(
            "iinode_monitoring_dead_letters",
            "Events the parent refused (400) moved to the dead-letter table.",
            registry=r,
        )
        self.parent_refusing = Gauge(
            "iinode_monitoring_parent_refusing",
            "1 while the parent refuses this node's reports for this reason (401/403).",
            ["reason"],
            registry=r,
        )
        self.task_failures = Counter(
            "iinode_monitoring_task_failures",
            "Monitoring background loops that failed and were restarted.",
            ["task"],
            registry=r,
        )
        self.notices_invalid = Counter(
            "iinode_monitoring_notices_invalid",
            "Notices pulled from the parent that did not validate (skipped).",
            registry=r,
        )
        self.label_mismatches = Counter(
            "iinode_monitoring_label_mismatches",
            "Events whose self-declared province/industry differed from this node's record.",
            ["child"],
            registry=r,
        )

    def add_callback(
        self,
        name: str,
        documentation: str,
        read: Callable[[], float | Samples],
        labels: tuple[str, ...] = (),
        counter: bool = False,
    ) -> CallbackCollector:
        """Register a gauge (or, with ``counter``, a counter) read at scrape time."""
        collector = CallbackCollector(name, documentation, read, labels, counter)
        self.registry.register(collector)
        return collector

    def add_counters(
        self, prefix: str, read: Callable[[], Mapping[str, float]], documentation: Mapping[str, str]
    ) -> CounterGroupCollector:
        """Register counters whose totals are read at scrape time (native workers' block)."""
        collector = CounterGroupCollector(prefix, read, documentation)
        self.registry.register(collector)
        return collector

    def add_collector(self, collector: Collector) -> Collector:
        """Register a collector a lower layer offers (telemetry's KPI gauges, say): the
        metrics subscribe to it, so that layer need not know the node's metrics."""
        self.registry.register(collector)
        return collector

    def render(self) -> bytes:
        return render(self.registry)
