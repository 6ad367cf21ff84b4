"""ZooKeeper's server metrics: the catalogue of names and a cheap in-process recorder.

ZooKeeper 3.6+ registers a fixed set of metrics (`ServerMetrics`) with its metrics provider:
counters, "basic" summaries (avg/min/max/count/sum) and "advanced" summaries that add
percentiles. Monitoring tools key on these names (the `mntr` word, the AdminServer's
`monitor` command, Prometheus scrapes), so the whole catalogue is listed here even though
zookapter measures only some of them; the rest stay at zero, as they would on a quiet
ZooKeeper server. `ServerMetrics` holds the live values; it is pure (no clock, no I/O) and
is updated from the request path by the server core.

Dump formats mirror ZooKeeper's DefaultMetricsProvider: a counter is `name`, a summary is
`avg_name`, `min_name`, `max_name`, `cnt_name`, `sum_name`, plus `p50_name`, `p95_name`,
`p99_name`, `p999_name` for advanced ones.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

COUNTERS: tuple[str, ...] = (
    "looking_count", "diff_count", "snap_count", "commit_count", "connection_request_count",
    "connection_rejected", "bytes_received_count", "unrecoverable_error_count",
    "add_dead_watcher_stall_time", "dead_watchers_queued", "dead_watchers_cleared",
    "response_packet_cache_hits", "response_packet_cache_misses",
    "response_packet_get_children_cache_hits", "response_packet_get_children_cache_misses",
    "ensemble_auth_success", "ensemble_auth_fail", "ensemble_auth_skip",
    "prep_processor_request_queued", "outstanding_changes_queued",
    "outstanding_changes_removed", "revalidate_count", "connection_drop_count",
    "connection_revalidate_count", "sessionless_connections_expired",
    "stale_sessions_expired", "request_commit_queued", "throttled_ops",
    "learner_proposal_received_count", "learner_commit_received_count",
    "sync_processor_request_queued", "proposal_count", "quit_leading_due_to_disloyal_voter",
    "stale_requests", "stale_requests_dropped", "stale_replies", "request_throttle_wait_count",
    "large_requests_rejected", "digest_mismatches_count", "unsuccessful_handshake",
    "insecure_admin_count", "tls_handshake_exceeded", "cnxn_closed_without_zk_server_running",
    "skip_learner_request_to_next_processor_count", "requests_not_forwarded_to_commit_processor",
    "response_bytes", "watch_bytes",
)

BASIC_SUMMARIES: tuple[str, ...] = (
    "fsynctime", "snapshottime", "dbinittime", "follower_sync_time", "observer_sync_time",
    "election_time", "connection_token_deficit", "inflight_snap_count", "inflight_diff_count",
    "node_created_watch_count", "node_deleted_watch_count", "node_changed_watch_count",
    "node_children_watch_count", "prep_processor_queue_size", "prep_process_time",
    "proposal_process_time", "unavailable_time", "leader_unavailable_time",
    "requests_in_session_queue", "pending_session_queue_size",
    "reads_after_write_in_session_queue", "reads_issued_from_session_queue",
    "session_queues_drained", "time_waiting_empty_pool_in_commit_processor_read_ms",
    "write_batch_time_in_commit_processor", "concurrent_request_processing_in_commit_processor",
    "read_commit_proc_req_queued", "write_commit_proc_req_queued",
    "commit_commit_proc_req_queued", "read_commit_proc_issued", "write_commit_proc_issued",
    "commit_process_time", "startup_txns_loaded", "startup_txns_load_time",
    "startup_snap_load_time", "sync_processor_queue_size", "sync_process_time",
    "sync_processor_batch_size", "netty_queued_buffer_capacity",
    "learner_request_processor_queue_size", "socket_closing_time",
)

ADVANCED_SUMMARIES: tuple[str, ...] = (
    "readlatency", "updatelatency", "propagation_latency", "dead_watchers_cleaner_latency",
    "prep_processor_queue_time_ms", "close_session_prep_time", "read_commitproc_time_ms",
    "write_commitproc_time_ms", "local_write_committed_time_ms",
    "server_write_committed_time_ms", "om_proposal_process_time_ms",
    "om_commit_process_time_ms", "read_final_proc_time_ms", "write_final_proc_time_ms",
    "proposal_latency", "proposal_ack_creation_latency", "commit_propagation_latency",
    "sync_processor_queue_and_flush_time_ms", "sync_processor_queue_time_ms",
    "sync_processor_queue_flush_time_ms", "quorum_ack_latency", "request_throttle_queue_time_ms",
    "jvm_pause_time_ms",
)

# Percentiles of an advanced summary in the mntr dump (key prefix, fraction).
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999))
# Prometheus quantiles of ZooKeeper's PrometheusMetricsProvider summaries.
PROMETHEUS_BASIC_QUANTILES: tuple[float, ...] = (0.5,)
PROMETHEUS_ADVANCED_QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99)

# Values kept per advanced summary to estimate percentiles (ZooKeeper keeps a reservoir too).
RESERVOIR_SIZE = 1028


class Summary:
    """Count, sum, min and max of observed values; advanced ones also keep recent values."""

    __slots__ = ("count", "total", "min", "max", "recent")

    def __init__(self, advanced: bool) -> None:
        self.recent: deque[int] | None = deque(maxlen=RESERVOIR_SIZE) if advanced else None
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.total = 0
        self.min = 0
        self.max = 0
        if self.recent is not None:
            self.recent.clear()

    def add(self, value: int) -> None:
        if self.count == 0 or value < self.min:
            self.min = value
        if self.count == 0 or value > self.max:
            self.max = value
        self.count += 1
        self.total += value
        if self.recent is not None:
            self.recent.append(value)

    @property
    def avg(self) -> float:
        return self.total / self.count if self.count else 0.0

    def quantiles(self, qs: tuple[float, ...]) -> list[int]:
        """The qs-quantiles of the recent values (nearest rank), 0 when there are none."""
        ordered = sorted(self.recent or ())
        return [_nearest_rank(ordered, q) for q in qs]

    def dump(self, name: str) -> Iterator[tuple[str, int | float]]:
        yield f"avg_{name}", round(float(self.avg), 4)  # AvgMinMaxCounter: 4 decimals
        yield f"min_{name}", self.min
        yield f"max_{name}", self.max
        yield f"cnt_{name}", self.count
        yield f"sum_{name}", self.total
        if self.recent is not None:
            values = self.quantiles(tuple(q for _, q in PERCENTILES))
            for (prefix, _), value in zip(PERCENTILES, values, strict=True):
                yield f"{prefix}_{name}", value


def _nearest_rank(ordered: list[int], q: float) -> int:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0


class ServerMetrics:
    """Live values for the whole catalogue. Unknown names are a programming error."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.summaries: dict[str, Summary] = {n: Summary(False) for n in BASIC_SUMMARIES}
        self.summaries.update((n, Summary(True)) for n in ADVANCED_SUMMARIES)

    def inc(self, name: str, delta: int = 1) -> None:
        self.counters[name] += delta

    def observe(self, name: str, value: int) -> None:
        self.summaries[name].add(value)

    def reset(self) -> None:
        """`srst`: ZooKeeper's ServerStats.reset() resets every metric too."""
        for name in self.counters:
            self.counters[name] = 0
        for summary in self.summaries.values():
            summary.reset()

    def dump(self) -> Iterator[tuple[str, int | float]]:
        """Counters, then summaries, as DefaultMetricsProvider.dump lists them."""
        yield from self.counters.items()
        for name in BASIC_SUMMARIES:
            yield from self.summaries[name].dump(name)
        for name in ADVANCED_SUMMARIES:
            yield from self.summaries[name].dump(name)
