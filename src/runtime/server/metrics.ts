import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { EngineStatus, Role } from "../../core/engine/contract.js";
import type { PeerStats } from "../transport/peer-transport.js";

const ROLES: readonly Role[] = ["follower", "precandidate", "candidate", "leader", "learner"];

/** What /metrics shows of each peer link (the transport's PeerStats has these and more). */
export type PeerMetricStats = Pick<PeerStats, "connected" | "framesSent" | "framesDropped" | "framesReceived" | "heartbeatBatchesSent" | "heartbeatsBatchedSent" | "heartbeatBatchesReceived" | "heartbeatsBatchedReceived">;

/** What the metrics read when scraped: the engine's view and the state machine's progress. */

export interface MetricsSource {
  status(): EngineStatus;
  appliedIndex(): number;
  /** Keys in the state machine. */
  keyCount(): number;
  /** The state machine's database on disk, in bytes. */
  databaseBytes(): number;
  pendingRequests(): number;
  peerStats(): ReadonlyMap<number, PeerMetricStats>;
  /** Each range's group on a sharded node (absent: one range, which the other gauges describe). */
  ranges?(): readonly RangeMetrics[];
  /** Ranges here whose log still starts with a held first state (a split's child, until its first full snapshot: range-births.ts). */
  heldRanges?(): number;
}

/** One range's group as the node sees it. */
export interface RangeMetrics {
  readonly id: number;
  readonly status: EngineStatus;
  readonly appliedIndex: number;
  readonly keys: number;
}

/**
 * The node's Prometheus metrics, named by Prometheus's conventions: counters end in
 * `_total`, sizes in `_bytes`, durations in `_seconds`. Gauges, and the counters the peer
 * transport keeps, are read when scraped (no work on the hot path); the other counters and
 * the histograms are updated where things happen. docs/http-api.md lists them.
 */
export class NodeMetrics {
  readonly registry = new Registry();
  readonly proposals: Counter<"result">;
  readonly reads: Counter<"consistency">;
  readonly fsyncSeconds: Histogram;
  readonly readyBatchEntries: Histogram;
  readonly requestSeconds: Histogram<"route" | "status">;
  readonly snapshots: Counter;
  readonly snapshotsInstalled: Counter;
  readonly leaderChanges: Counter;
  readonly rangeForwards: Counter;

  constructor(source: MetricsSource) {
    const registry = this.registry;
    collectDefaultMetrics({ register: registry, prefix: "synod_" });
    new Gauge({ name: "synod_raft_term", help: "The current term", registers: [registry], collect() { this.set(source.status().term); } });
    new Gauge({
      name: "synod_raft_role",
      help: "1 for the role this node has now, 0 for the others",
      labelNames: ["role"],
      registers: [registry],
      collect() {
        const role = source.status().role;
        for (const candidate of ROLES) this.set({ role: candidate }, candidate === role ? 1 : 0);
      },
    });
    new Gauge({ name: "synod_raft_leader", help: "The leader this node knows (0: none)", registers: [registry], collect() { this.set(source.status().leader ?? 0); } });
    new Gauge({ name: "synod_raft_commit_index", help: "The highest log index known committed", registers: [registry], collect() { this.set(source.status().commitIndex); } });
    new Gauge({ name: "synod_raft_last_index", help: "The last index in this node's log", registers: [registry], collect() { this.set(source.status().lastIndex); } });
    new Gauge({ name: "synod_raft_snapshot_index", help: "The index of the latest snapshot", registers: [registry], collect() { this.set(source.status().snapshotIndex); } });
    new Gauge({ name: "synod_raft_applied_index", help: "The highest index the state machine applied", registers: [registry], collect() { this.set(source.appliedIndex()); } });
    new Gauge({ name: "synod_pending_requests", help: "Client requests waiting to commit or to be confirmed", registers: [registry], collect() { this.set(source.pendingRequests()); } });
    new Gauge({ name: "synod_kv_keys", help: "Keys in the state machine", registers: [registry], collect() { this.set(source.keyCount()); } });
    if (source.ranges !== undefined) {
      const ranges = source.ranges.bind(source);
      const perRange = (name: string, help: string, pick: (range: RangeMetrics) => number): void => {
        new Gauge({
          name,
          help,
          labelNames: ["range"],
          registers: [registry],
          collect() {
            this.reset();
            for (const range of ranges()) this.set({ range: String(range.id) }, pick(range));
          },
        });
      };
      perRange("synod_range_leader", "Each range's leader as this node knows it (0: none)", (range) => range.status.leader ?? 0);
      perRange("synod_range_is_leader", "1 for each range this node leads", (range) => (range.status.role === "leader" ? 1 : 0));
      perRange("synod_range_term", "Each range's current term", (range) => range.status.term);
      perRange("synod_range_commit_index", "Each range's highest log index known committed", (range) => range.status.commitIndex);
      perRange("synod_range_applied_index", "Each range's highest index its state machine applied", (range) => range.appliedIndex);
      perRange("synod_range_keys", "Keys in each range", (range) => range.keys);
      perRange("synod_range_snapshot_index", "The index of each range's latest snapshot", (range) => range.status.snapshotIndex);
    }
    if (source.heldRanges !== undefined) {
      const heldRanges = source.heldRanges.bind(source);
      new Gauge({ name: "synod_ranges_held", help: "Ranges born of a split whose log still starts with a first state naming records its parent's split left here (until their first full snapshot)", registers: [registry], collect() { this.set(heldRanges()); } });
    }
    new Gauge({ name: "synod_kv_database_size_bytes", help: "Size of the state machine's database file on disk (LMDB data.mdb)", registers: [registry], collect() { this.set(source.databaseBytes()); } });
    new Gauge({
      name: "synod_peer_connected",
      help: "1 when the outbound connection to the peer is up",
      labelNames: ["peer"],
      registers: [registry],
      collect() {
        this.reset();
        for (const [id, stats] of source.peerStats()) this.set({ peer: String(id) }, stats.connected ? 1 : 0);
      },
    });
    // The transport counts these; each scrape copies its counts (a peer the transport no longer lists is dropped).
    const peerCounter = (name: string, help: string, pick: (stats: PeerMetricStats) => number): void => {
      new Counter({
        name,
        help,
        labelNames: ["peer"],
        registers: [registry],
        collect() {
          this.reset();
          for (const [id, stats] of source.peerStats()) this.inc({ peer: String(id) }, pick(stats));
        },
      });
    };
    peerCounter("synod_peer_frames_sent_total", "Messages sent to the peer", (s) => s.framesSent);
    peerCounter("synod_peer_frames_dropped_total", "Messages dropped for the peer (not connected, or its queue full); the engine resends", (s) => s.framesDropped);
    peerCounter("synod_peer_frames_received_total", "Messages received from the peer", (s) => s.framesReceived);
    // Heartbeats of many ranges sent to one peer in one turn travel as one frame (runtime/transport/heartbeat-batch.ts).
    peerCounter("synod_peer_heartbeat_batches_sent_total", "Heartbeat batch frames sent to the peer (each also one of synod_peer_frames_sent_total)", (s) => s.heartbeatBatchesSent);
    peerCounter("synod_peer_heartbeats_batched_sent_total", "Heartbeats and heartbeat responses sent to the peer inside batch frames", (s) => s.heartbeatsBatchedSent);
    peerCounter("synod_peer_heartbeat_batches_received_total", "Heartbeat batch frames received from the peer (each also one of synod_peer_frames_received_total)", (s) => s.heartbeatBatchesReceived);
    peerCounter("synod_peer_heartbeats_batched_received_total", "Heartbeats and heartbeat responses received from the peer inside batch frames", (s) => s.heartbeatsBatchedReceived);
    this.leaderChanges = new Counter({ name: "synod_raft_leader_changes_total", help: "Times this node saw a leader take office (another leader, or a new term with a leader)", registers: [registry] });
    this.rangeForwards = new Counter({ name: "synod_range_forwards_total", help: "Requests this node sent on to another node because it hosts no replica of their range (--replicas)", registers: [registry] });
    this.proposals = new Counter({ name: "synod_proposals_total", help: "Writes proposed by this node's clients, by outcome", labelNames: ["result"], registers: [registry] });
    this.reads = new Counter({ name: "synod_reads_total", help: "Reads served, by consistency", labelNames: ["consistency"], registers: [registry] });
    this.snapshots = new Counter({ name: "synod_snapshots_total", help: "Snapshots taken by this node (log compactions)", registers: [registry] });
    this.snapshotsInstalled = new Counter({ name: "synod_snapshots_installed_total", help: "Snapshots received from a leader and installed", registers: [registry] });
    this.fsyncSeconds = new Histogram({
      name: "synod_wal_fsync_seconds",
      help: "Time to write and fdatasync one batch of the write-ahead log",
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    });
    this.readyBatchEntries = new Histogram({
      name: "synod_wal_batch_entries",
      help: "Log entries written per fsync (group commit)",
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024],
      registers: [registry],
    });
    this.requestSeconds = new Histogram({
      name: "synod_http_request_duration_seconds",
      help: "HTTP request latency, by route and status",
      labelNames: ["route", "status"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    });
  }
}
