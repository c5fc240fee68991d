// One round of txn2pc.bench.ts's recovery measurement: transfers across two ranges posted to
// one node (which coordinates them) by `inFlight` clients at once, that node killed with
// SIGKILL, and the time from the kill until every key the transfers touched can be read
// again from a survivor. A linearizable GET of a key a transaction holds waits on the node
// until the transaction is resolved there (docs/transactions.md), so each key's read
// returning is the moment it was freed (within the node's 5 ms poll); the time until the
// survivor's `GET /v1/shards` shows no intent in any range, and the recoveries the survivors
// logged, say the same from the other side.
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { BenchCluster } from "./bench-cluster.js";
import { keyIn, Pools, rangeOfKey, rangesLed, readKey, putAll, shardsOf, sumOf, transfer, RANGES } from "./txn-load.js";

const START = 1_000;
/** Transfers run this long before the kill, so that every client has one in flight. */
const LOAD_BEFORE_KILL_MS = 1_500;
/** The round gives up waiting for the keys after this long. */
const FREE_WAIT_MS = 30_000;
const SHARDS_POLL_MS = 50;
const RETRY_READ_MS = 20;
/** What a survivor logs when it resolved a transaction whose coordinator vanished (cross-range-txn.ts). */
const RECOVERED_MESSAGE = "whose coordinator vanished";
/** What a node logs (at info) when it hands ranges' leaderships to others to spread them (range-duties.ts). */
const HANDOVER_MESSAGE = "handing over a range's leadership";

export interface RecoveryRound {
  readonly victim: number;
  /** The ranges the killed node led at the kill. */
  readonly victimLed: readonly number[];
  /** Transfers committed before the kill, and requests outstanding at the kill (answered by a broken connection). */
  readonly committedBeforeKill: number;
  readonly inFlightAtKill: number;
  /** What the transfers that did not commit before the kill answered (none expected: no two share a key). */
  readonly errorsBeforeKill: readonly string[];
  /**
   * The most intents the survivor's replicas held at once after the kill, all ranges together
   * (a follower applies a prepare a moment after its leader, and a new leader commits what the
   * old one had replicated, so the count can rise after the kill).
   */
  readonly intentsPeak: number;
  /** From the kill until every range has a surviving leader, as the survivor sees it. */
  readonly electedMs: number;
  /** From the kill until the read of each key returned: the last of all, of the keys in ranges the victim led, and of the others. */
  readonly allKeysFreeMs: number;
  readonly victimLedKeysFreeMs: number;
  readonly survivorLedKeysFreeMs: number;
  /** From the kill until the survivor showed no intent in any range. */
  readonly intentsZeroMs: number;
  /** Recoveries the survivors logged, and when the first and last were logged (ms after the kill, by the wall clock). */
  readonly recoveries: number;
  readonly firstRecoveryMs: number;
  readonly lastRecoveryMs: number;
  /** Each recovery logged: ms after the kill, the node, the range it resolved and the transaction's anchor. */
  /** Leaderships the survivors handed to each other after the kill, to spread them (each restarts the 3 s its new leader waits). */
  readonly handoversAfterKill: number;
  readonly recoveryLog: readonly { readonly ms: number; readonly node: number; readonly range: number; readonly anchor: number }[];
  /** The sum of all balances after the round, and what it must be. */
  readonly total: number;
  readonly totalExpected: number;
}

/** One round on a fresh `synod cluster --nodes 3 --shards 4`; `victim` is the node (1..3) the transfers go to and that is killed. */
export async function recoveryRound(victim: number, inFlight: number): Promise<RecoveryRound> {
  // At info the nodes also log the leaderships they hand over (a few lines; nothing per request).
  const cluster = await BenchCluster.start({ nodes: 3, consensus: "raft", shards: RANGES, logLevel: "info" });
  const pools = new Pools(inFlight);
  try {
    const victimUrl = cluster.endpoints[victim - 1] as string;
    const survivorUrl = cluster.endpoints.find((_, i) => i + 1 !== victim) as string;
    await rangesLed(survivorUrl);
    // Each client its own two keys, in neighbouring ranges: no conflicts, so every transfer prepares, and all four ranges are touched.
    const pairs = Array.from({ length: inFlight }, (_, i) => [keyIn(i % RANGES, `recovery-${i}-a`), keyIn((i + 1) % RANGES, `recovery-${i}-b`)] as const);
    const keys = pairs.flat();
    await putAll(pools.get(survivorUrl), keys, START);

    let killed = false;
    let committed = 0;
    let inFlightAtKill = 0;
    /** Transfers with no conflict that did not commit before the kill (none expected). */
    const errorsBeforeKill: string[] = [];
    const victimPool = pools.get(victimUrl);
    const loops = pairs.map(async ([from, to]) => {
      const believed: [number, number] = [START, START];
      while (!killed) {
        const outcome = await transfer(victimPool, from, to, believed);
        if (outcome.kind === "committed") {
          committed++;
          believed[0]--;
          believed[1]++;
        } else if (killed) inFlightAtKill++;
        else errorsBeforeKill.push(outcome.kind === "error" ? outcome.message || outcome.code : "failed-compare");
      }
    });
    await sleep(LOAD_BEFORE_KILL_MS);
    const ledAtKill = (await shardsOf(victimUrl)) ?? [];
    const victimLed = ledAtKill.filter((shard) => shard.leader === victim).map((shard) => shard.id);
    const committedBeforeKill = committed;
    killed = true;
    cluster.killNode(victim);
    const killedAtMs = performance.now();
    const killedAtWallMs = Date.now();
    const sinceKill = (): number => performance.now() - killedAtMs;

    const survivorPool = pools.get(survivorUrl);
    const keyFree = keys.map(async (key) => {
      while (sinceKill() < FREE_WAIT_MS) {
        const read = await readKey(survivorPool, key);
        if ("value" in read) return sinceKill();
        await sleep(RETRY_READ_MS);
      }
      return Number.NaN;
    });
    const watched = watchShards(survivorUrl, victim, sinceKill);
    const freeMs = await Promise.all(keyFree);
    const { intentsPeak, electedMs, intentsZeroMs } = await watched;
    await Promise.all(loops);

    const lastOf = (pick: (key: string) => boolean): number => Math.max(...keys.map((key, i) => (pick(key) ? (freeMs[i] as number) : 0)));
    const survivors = cluster.endpoints.map((_, i) => i + 1).filter((id) => id !== victim);
    const recoveryLog = survivors
      .flatMap((id) => logged(cluster.nodeLog(id), RECOVERED_MESSAGE).map((line) => ({ ...line, node: id, ms: line.time - killedAtWallMs })))
      .sort((a, b) => a.ms - b.ms);
    const handoversAfterKill = survivors.flatMap((id) => logged(cluster.nodeLog(id), HANDOVER_MESSAGE)).filter((line) => line.time >= killedAtWallMs).length;
    const recoveryTimes = recoveryLog.map((logged) => logged.ms);
    return {
      victim,
      victimLed,
      committedBeforeKill,
      inFlightAtKill,
      errorsBeforeKill,
      intentsPeak,
      electedMs,
      allKeysFreeMs: freeMs.some(Number.isNaN) ? Number.NaN : Math.max(...freeMs),
      victimLedKeysFreeMs: lastOf((key) => victimLed.includes(rangeOfKey(key))),
      survivorLedKeysFreeMs: lastOf((key) => !victimLed.includes(rangeOfKey(key))),
      intentsZeroMs,
      recoveries: recoveryTimes.length,
      firstRecoveryMs: recoveryTimes.length === 0 ? Number.NaN : Math.min(...recoveryTimes),
      lastRecoveryMs: recoveryTimes.length === 0 ? Number.NaN : Math.max(...recoveryTimes),
      handoversAfterKill,
      recoveryLog: recoveryLog.map(({ ms, node, range, anchor }) => ({ ms, node, range, anchor })),
      total: await sumOf(survivorPool, keys),
      totalExpected: START * keys.length,
    };
  } finally {
    await pools.close();
    await cluster.stop();
  }
}

/** Polls the survivor's view of the ranges: the most intents, when every range has a leader other than the victim, and when no range has an intent left. */
async function watchShards(url: string, victim: number, sinceKill: () => number): Promise<{ intentsPeak: number; electedMs: number; intentsZeroMs: number }> {
  let intentsPeak = 0;
  let electedMs = Number.NaN;
  while (sinceKill() < FREE_WAIT_MS) {
    const shards = await shardsOf(url);
    if (shards !== null) {
      const intents = shards.reduce((sum, shard) => sum + (shard.intents ?? 0), 0);
      intentsPeak = Math.max(intentsPeak, intents);
      if (Number.isNaN(electedMs) && shards.every((shard) => shard.leader !== null && shard.leader !== victim)) electedMs = sinceKill();
      if (intents === 0 && !Number.isNaN(electedMs)) return { intentsPeak, electedMs, intentsZeroMs: sinceKill() };
    }
    await sleep(SHARDS_POLL_MS);
  }
  return { intentsPeak, electedMs, intentsZeroMs: Number.NaN };
}

/** The lines of a node's log with `message` (pino JSON lines: `time` in ms; for a recovery, the range resolved and the anchor asked). */
function logged(log: string, message: string): { time: number; range: number; anchor: number }[] {
  const times: { time: number; range: number; anchor: number }[] = [];
  for (const line of log.split("\n")) {
    if (!line.includes(message)) continue;
    try {
      const { time, range, anchor } = JSON.parse(line) as { time?: unknown; range?: unknown; anchor?: unknown };
      if (typeof time === "number") times.push({ time, range: Number(range), anchor: Number(anchor) });
    } catch {
      // Not a JSON line (a pretty-printed log): not counted.
    }
  }
  return times;
}
