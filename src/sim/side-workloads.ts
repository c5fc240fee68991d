/**
 * The workloads a run may add beside the KV clients (`synod sim --workload`), wired to the
 * run: lease clients and the lease checker ("leases"), watchers following the keys through
 * reconnects ("watch"), clients contending for a lock ("lock"). Each workload's clients and
 * checks are in its own module (lease-workload.ts, watch-workload.ts, lock-workload.ts);
 * this gives them the world — the client links, virtual time, the nodes' stores — and runs
 * them through the run's phases: start, stop at the end of the heal, check.
 */
import type { Prng } from "../core/common/prng.js";
import type { LogEntry, NodeId } from "../core/engine/contract.js";
import { isKvMutant } from "../core/kv/mutants.js";
import { isLockMutant } from "../core/kv/lock-turn.js";
import type { LeaseExpiry } from "../core/kv/model.js";
import type { KvStore } from "../core/kv/store.js";
import { LeaseChecker } from "./check/leases.js";
import { LeaseClient, type LeaseRequest, type LeaseResponse } from "./lease-workload.js";
import { LockWorkload, type LockRequest, type LockResponse, type LockStats } from "./lock-workload.js";
import type { SimNode } from "./node.js";
import { SIM_EPOCH_MS } from "./node-io.js";
import type { SimParams } from "./params.js";
import type { SimWorkload } from "./run-options.js";
import { WatchWorkload, type WatchStats, type WatchWorld } from "./watch-workload.js";
import { TxnWorkload, type TxnStats } from "./txn-workload.js";
import type { SimTxnRequest, SimTxnResponse } from "./txn-node.js";

const LEASE_CLIENTS = 2;

/** What the side workloads use of the run. */
export interface SideWorld {
  now(): number;
  after(delayMicros: number, action: () => void): void;
  /** Runs `action` at the far end of a client link (see Wire.overClientLink). */
  overClientLink(action: () => void): void;
  /** One way over a client link, drawn from `prng` (see Wire.clientLinkDelayMicros). */
  clientLinkDelayMicros(prng: Prng): number;
  node(id: NodeId): SimNode<unknown> | undefined;
  /** Group 0's leader with the highest term among the live nodes, if any. */
  leader(): NodeId | null;
  /** Whether `node` is a member of `group` (as its leader sees it). */
  isMember(group: number, node: NodeId): boolean;
  note(actor: string, text: () => string): void;
}

/** What `SideWorkloads.create` builds the clients from. */
export interface SideWorkloadOptions {
  readonly workload: SimWorkload;
  readonly nodeIds: readonly NodeId[];
  readonly params: SimParams;
  /** The stream each workload forks its own from. */
  readonly root: Prng;
  /** The run's mutant, if any: a KV or lock mutant is the watchers' or the lock clients' to carry. */
  readonly mutant: string | undefined;
  /** Lease clients are numbered from here + 1, apart from the node ids and the KV clients. */
  readonly leaseClientIdBase: number;
}

export class SideWorkloads {
  private readonly leaseClients = new Map<number, LeaseClient>();
  /** Always fed the clock entries' expiries: it judges only what the lease clients were told. */
  private readonly leaseChecker = new LeaseChecker(SIM_EPOCH_MS);
  private watchWorkload: WatchWorkload | null = null;
  private lockWorkload: LockWorkload | null = null;
  private txnWorkload: TxnWorkload | null = null;
  /** Each node's KV store (group 0, this incarnation): what its watches read. */
  private readonly kvStores = new Map<NodeId, KvStore>();
  /** Each node's KV stores of every group (this incarnation): what the transaction checks read at the end. */
  private readonly groupStores = new Map<NodeId, KvStore[]>();

  constructor(private readonly world: SideWorld) {}

  /**
   * Builds the workload's clients ("kv": none), drawing their streams from `root` — after
   * the KV clients', so theirs stay as they were.
   */
  create({ workload, nodeIds, params, root, mutant, leaseClientIdBase }: SideWorkloadOptions): void {
    if (workload === "leases") {
      const prngLeases = root.fork();
      for (let i = 0; i < LEASE_CLIENTS; i++) {
        const id = leaseClientIdBase + i + 1;
        this.leaseClients.set(id, new LeaseClient(id, nodeIds, params, prngLeases.fork(), this.leaseClientHost(), this.leaseChecker));
      }
    }
    if (workload === "watch") {
      const kvMutant = mutant !== undefined && isKvMutant(mutant) ? mutant : null;
      this.watchWorkload = new WatchWorkload(this.watchWorld(root.fork()), nodeIds, root.fork(), kvMutant);
      for (const [id, kv] of this.kvStores) this.watchWorkload.attach(id, kv);
    }
    if (workload === "lock") {
      const lockMutant = mutant !== undefined && isLockMutant(mutant) ? mutant : null;
      const prngLocks = root.fork();
      const world = {
        now: () => this.world.now(),
        after: (delay: number, action: () => void) => this.world.after(delay, action),
        send: this.lockSend.bind(this),
        note: (actor: string, text: () => string) => this.world.note(actor, text),
      };
      this.lockWorkload = new LockWorkload(world, nodeIds, params, prngLocks, lockMutant);
      for (const kv of this.kvStores.values()) this.attachLockChecker(kv);
    }
    if (workload === "txn" || workload === "bank") {
      const world = {
        now: () => this.world.now(),
        after: (delay: number, action: () => void) => this.world.after(delay, action),
        send: this.txnSend.bind(this),
        note: (actor: string, text: () => string) => this.world.note(actor, text),
      };
      this.txnWorkload = new TxnWorkload(workload, world, nodeIds, params, root.fork());
    }
  }

  /** A transaction client's request over the client link to node `to`, and its answer back the same way. */
  private txnSend(to: NodeId, request: SimTxnRequest, reply: (from: NodeId, response: SimTxnResponse) => void): void {
    const answer = (response: SimTxnResponse): void => this.world.overClientLink(() => reply(to, response));
    this.world.overClientLink(() => this.world.node(to)?.requestTxn(request, answer));
  }

  /** A lock client's request over the client link to node `to`, and its answers back the same way. */
  private lockSend(to: NodeId, request: LockRequest, reply: (from: NodeId, response: LockResponse) => void): void {
    this.world.note(`lock client ${request.sessionId}`, () => `-> ${to}: ${request.op}${"lease" in request ? ` lease ${request.lease}` : ""}${"key" in request ? ` ${request.key}` : ""}`);
    const answer = (response: LockResponse): void => this.world.overClientLink(() => reply(to, response));
    this.world.overClientLink(() => this.world.node(to)?.requestLock(request, answer));
  }

  private attachLockChecker(kv: KvStore): void {
    const checker = this.lockWorkload?.checker;
    if (checker !== undefined) kv.setObserver({ committed: (changes) => checker.committed(changes), restored: () => undefined });
  }

  /** What the watchers use of the world: virtual time, client links that keep their order, the nodes' processes. */
  private watchWorld(prng: Prng): WatchWorld {
    return {
      now: () => this.world.now(),
      after: (delay, action) => this.world.after(delay, action),
      linkDelayMicros: () => this.world.clientLinkDelayMicros(prng),
      onNode: (id, action) => this.world.node(id)?.runInProcess(action) ?? false,
      leader: () => this.world.leader(),
      note: (actor, text) => this.world.note(actor, text),
    };
  }

  /** What a lease client uses of the world: the client link, virtual time, the trace. */
  private leaseClientHost() {
    return {
      now: () => this.world.now(),
      after: (delay: number, action: () => void) => this.world.after(delay, action),
      send: (clientId: number, to: NodeId, request: LeaseRequest) => {
        this.world.note(`lease client ${clientId}`, () => `-> ${to}: ${request.op}${"lease" in request ? ` lease ${request.lease}` : ""}${"key" in request ? ` ${request.key}` : ""}`);
        this.world.overClientLink(() => this.world.node(to)?.requestLease(request));
      },
      note: (actor: string, text: () => string) => this.world.note(actor, text),
    };
  }

  /** `group`'s KV store on `node` was built (boot, restart): group 0's the watches read and the lock checker observes; every group's the transaction checks read. */
  kvStoreCreated(node: NodeId, kv: KvStore, group: number): void {
    const stores = this.groupStores.get(node) ?? [];
    stores[group] = kv;
    this.groupStores.set(node, stores);
    if (group !== 0) return;
    this.kvStores.set(node, kv);
    this.watchWorkload?.attach(node, kv);
    this.attachLockChecker(kv);
  }

  /** A node's answer to a lease client. */
  sendLeaseResponse(from: NodeId, clientId: number, response: LeaseResponse): void {
    this.world.overClientLink(() => this.leaseClients.get(clientId)?.onResponse(from, response));
  }

  /** A clock entry applied on `node`: its proposer's time, and the leases it expired. */
  clockApplied(node: NodeId, entry: LogEntry, timeMs: number, expired: readonly LeaseExpiry[]): void {
    if (expired.length > 0) this.world.note(`node ${node}`, () => `clock entry ${entry.index} expired ${expired.map((expiry) => `lease ${expiry.id}`).join(", ")}`);
    this.leaseChecker.applied(node, entry.index, entry.term, timeMs, expired);
  }

  /** A node became group 0's leader of `term`: leases count their failover allowance from then. */
  leaderElected(term: number, atMicros: number): void {
    this.leaseChecker.leaderElected(term, atMicros);
  }

  /** Node `id` crashed: its watch streams are gone. */
  nodeCrashed(id: NodeId): void {
    this.watchWorkload?.drop(id);
  }

  start(): void {
    for (const client of this.leaseClients.values()) client.start();
    this.watchWorkload?.start();
    this.lockWorkload?.start();
    this.txnWorkload?.start();
  }

  /** At the end of the heal: the clients stop, the watchers catch up. */
  stop(): void {
    for (const client of this.leaseClients.values()) client.stop();
    this.watchWorkload?.settle();
    this.lockWorkload?.stop();
    this.txnWorkload?.stop();
  }

  /** The side workloads' own checks, at the end of the run. */
  check(): void {
    this.watchWorkload?.check();
    this.lockWorkload?.checker.check();
    if (this.txnWorkload !== null) {
      // The live nodes' stores of the groups they are members of (a node outside a group's configuration gets none of its log).
      const live = new Map([...this.groupStores].filter(([node]) => this.world.node(node)?.up === true).map(([node, stores]) => [node, stores.map((kv, group) => (this.world.isMember(group, node) ? kv : undefined))] as const));
      this.txnWorkload.check(live);
    }
  }

  stats(): { readonly watch?: WatchStats; readonly lock?: LockStats; readonly txn?: TxnStats } {
    return {
      ...(this.txnWorkload === null ? {} : { txn: this.txnWorkload.stats() }),
      ...(this.watchWorkload === null ? {} : { watch: this.watchWorkload.stats() }),
      ...(this.lockWorkload === null ? {} : { lock: this.lockWorkload.stats() }),
    };
  }
}
