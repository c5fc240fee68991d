// A node without consensus, for in-process tests of the HTTP layer: writes apply at once to
// a real KvStore, and its watches are served by a real WatchHub over that store.
import { findLease, listLeases } from "./lease-view.js";
import { encodeCommand, type KvCommand } from "../../core/kv/command.js";
import type { KvStore } from "../../core/kv/store.js";
import type { KvService, QuorumView, Readiness } from "./http-api.js";
import { DEFAULT_WATCH_OPTIONS, WatchHub, type WatchOptions } from "./watch.js";

/** What a test makes the fake node do instead of serving. */
export interface Fault {
  refuse: Error | null;
  /** While set, linearizable reads wait for it (a read index not yet applied). */
  linearizableGate?: Promise<void> | null;
  quorum: QuorumView;
  readiness: Readiness;
}

/** A node without consensus: writes apply at once to a real KvStore, in the client's session or its own. */
export function fakeService(store: KvStore, fault: Fault, writes: KvCommand[], watchOptions: WatchOptions = DEFAULT_WATCH_OPTIONS): KvService {
  const watches = new WatchHub(store, watchOptions, () => fault.refuse);
  store.setObserver(watches);
  let index = 0;
  const apply = (command: KvCommand): ReturnType<KvStore["apply"]> => {
    writes.push(command);
    return store.apply(++index, encodeCommand(command));
  };
  return {
    auth: () => store.auth,
    write: (operation, client) => {
      if (fault.refuse !== null) return Promise.reject(fault.refuse);
      const request = client === null || client === undefined ? { clientId: 0, sequence: 0 } : client;
      return Promise.resolve(apply({ ...operation, request } as KvCommand).result);
    },
    register: () => {
      const result = apply({ op: "register", request: { clientId: 0, sequence: 0 } }).result;
      return Promise.resolve(result.op === "session" ? result.clientId : 0);
    },
    read: async (consistency) => {
      if (fault.refuse !== null) throw fault.refuse;
      if (consistency === "linearizable") await fault.linearizableGate;
    },
    get: (key) => store.get(key),
    range: (prefix, limit, afterKey) => {
      const records = store.range(prefix, limit + 1, afterKey === null ? {} : { after: afterKey });
      return { records: records.slice(0, limit), more: records.length > limit };
    },
    getAt: (key, revision) => store.getAt(key, revision),
    rangeAt: (prefix, limit, afterKey, revision) => {
      const records = store.rangeAt(prefix, limit + 1, afterKey === null ? { revision } : { after: afterKey, revision });
      return { records: records.slice(0, limit), more: records.length > limit };
    },
    revision: () => store.currentRevision,
    unlocked: () => Promise.resolve(),
    span: () => store.backend.span ?? { start: "", end: null },
    lease: (id, keysMax) => findLease(store, id, keysMax, store.clock),
    leases: (limit, afterId) => listLeases(store, limit, afterId, store.clock),
    watches,
    status: () => ({ id: 1, role: "leader", term: 1, leader: 1, leaderHttp: null, commitIndex: index, appliedIndex: index, members: [] }),
    shards: () => ({ shards: [{ id: 0, start: "", end: null, epoch: 1 }] }),
    members: () => ({ members: [], joint: false }),
    changeMembers: () => Promise.resolve({ status: 200, body: {} }),
    transferLeadership: () => Promise.resolve({ status: 200, body: {} }),
    metrics: () => Promise.resolve({ contentType: "text/plain", body: "" }),
    quorum: () => fault.quorum,
    readiness: () => fault.readiness,
    observeRequest: () => undefined,
    logError: () => undefined,
    backup: () => Promise.reject(new Error("no backups in this test")),
  };
}

export const READY: Readiness = { checks: [{ name: "member", ok: true, detail: "a voter" }, { name: "leader", ok: true, detail: "node 1 leads" }, { name: "caught_up", ok: true, detail: "applied 3 of 3" }] };
export const ALL_REACHED: QuorumView = { voters: [1, 2, 3], reachable: [1, 2, 3], quorum: true };

