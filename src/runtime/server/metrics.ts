import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { EngineStatus, Role } from "../../core/engine/contract.js";

const ROLES: readonly Role[] = ["follower", "precandidate", "candidate", "leader", "learner"];

/** What the metrics read when scraped: the engine's view and the state machine's progress. */
export interface MetricsSource {
  status(): EngineStatus;
  appliedIndex(): number;
  pendingRequests(): number;
  peerStats(): ReadonlyMap<number, { readonly connected: boolean; readonly framesSent: number; readonly framesDropped: number; readonly framesReceived: number }>;
}

/**
 * The node's Prometheus metrics. Gauges are computed when scraped (no work on the hot
 * path); counters and histograms are updated where things happen.
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
    const peer = (name: string, help: string, pick: (stats: { connected: boolean; framesSent: number; framesDropped: number; framesReceived: number }) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ["peer"],
        registers: [registry],
        collect() {
          for (const [id, stats] of source.peerStats()) this.set({ peer: String(id) }, pick(stats));
        },
      });
    };
    peer("synod_peer_connected", "1 when the outbound connection to the peer is up", (s) => (s.connected ? 1 : 0));
    peer("synod_peer_frames_sent", "Messages sent to the peer", (s) => s.framesSent);
    peer("synod_peer_frames_dropped", "Messages dropped for the peer (not connected, or its queue full); the engine resends", (s) => s.framesDropped);
    peer("synod_peer_frames_received", "Messages received from the peer", (s) => s.framesReceived);
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
