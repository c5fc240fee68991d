/**
 * The nemesis's network: each node in a Linux network namespace of its own, joined to the
 * others by a bridge in the root namespace, where the runner and its clients live and reach
 * every node. Links between nodes are cut by dropping packets as they leave a namespace.
 *
 *   root namespace:  bridge synbr<K>, 10.77.K.1/24 (the clients' address)
 *   node i:          namespace synod-nem-<runner pid>-<i>, veth synv<K>p<i>, 10.77.K.(10+i)
 *
 * How a cut is made. A cut from A to B drops, on A's interface, every IPv4 packet addressed to
 * B: A's root qdisc is an HTB whose unclassified traffic passes untouched, plus one class whose
 * queue (`pfifo limit 0`) holds nothing, so whatever a u32 filter sends there is dropped. The
 * sender learns nothing: its socket accepted the bytes and they vanish on the way, as in a real
 * partition. A route (`ip route add blackhole|prohibit|unreachable`) is not that: measured here,
 * connect() to a blackholed address fails at once with EINVAL (prohibit: EACCES, unreachable:
 * EHOSTUNREACH), so the node would be told at once that the peer is gone. tc's drop action
 * (act_gact) would be simpler but is not in every kernel; HTB, pfifo and u32 are.
 *
 * A one-way cut (A cannot send to B) drops A's packets only: B's segments still arrive at A,
 * but A's acknowledgements do not reach B, so over TCP B's bytes get through until its window
 * fills and then it retransmits into silence, as with a one-way failure of a real link.
 *
 * Names carry the runner's pid (the bridge, whose name is short, carries it in its alias), so a
 * later run can tell what a crashed runner left behind and remove only that.
 */
import { execFileSync } from "node:child_process";

const PREFIX = "synod-nem-";
const BRIDGE_PREFIX = "synbr";
const OWNER_ALIAS = "synod-nemesis owner-pid=";
/** The u32 filters' preference is 100 + the destination node's id, so a cut is deleted by it. */
const CUT_PREF_BASE = 100;

/** A command of ip or tc that failed: what was run and what it said. */
export class NetnsError extends Error {
  constructor(argv: readonly string[], detail: string) {
    super(`${argv.join(" ")}: ${detail.trim()}`);
    this.name = "NetnsError";
  }
}

function run(argv: readonly string[]): string {
  try {
    return execFileSync(argv[0] as string, argv.slice(1), { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 10_000 });
  } catch (error) {
    const failed = error as { stderr?: string; message: string; code?: string };
    throw new NetnsError(argv, failed.code === "ENOENT" ? `${argv[0]} is not installed` : (failed.stderr ?? "") || failed.message);
  }
}

/** Runs and ignores a failure: for removing what may already be gone. */
function tryRun(argv: readonly string[]): boolean {
  try {
    run(argv);
    return true;
  } catch {
    return false;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === "EPERM";
  }
}

/**
 * Why this machine cannot run the nemesis, or null when it can: it needs root, iproute2's
 * `ip` and `tc`, network namespaces, veth pairs, and HTB with u32 filters. Tried for real, in
 * a namespace of its own that is removed again.
 */
export function netnsUnavailableReason(): string | null {
  if (process.platform !== "linux") return `network namespaces are Linux only (this is ${process.platform})`;
  const uid = process.getuid?.() ?? -1;
  if (uid !== 0) return `creating network namespaces needs root (this process runs as uid ${uid})`;
  const probe = `${PREFIX}${process.pid}-probe`;
  try {
    run(["ip", "netns", "add", probe]);
  } catch (error) {
    return `cannot create a network namespace: ${(error as Error).message}`;
  }
  try {
    run(["ip", "-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1"]);
    run(["ip", "-n", probe, "link", "set", "p0", "up"]);
    for (const argv of dropQdisc("p0")) run(["ip", "netns", "exec", probe, ...argv]);
    run(["ip", "netns", "exec", probe, ...cutFilter("p0", 1, "10.77.0.11")]);
    return null;
  } catch (error) {
    return `cannot cut links with tc in a namespace: ${(error as Error).message}`;
  } finally {
    tryRun(["ip", "netns", "del", probe]);
  }
}

/** HTB at the root of `device`: class 1:1 drops all it is given (a queue of length 0); the rest passes. */
function dropQdisc(device: string): string[][] {
  return [
    ["tc", "qdisc", "add", "dev", device, "root", "handle", "1:", "htb"],
    ["tc", "class", "add", "dev", device, "parent", "1:", "classid", "1:1", "htb", "rate", "8kbit"],
    ["tc", "qdisc", "add", "dev", device, "parent", "1:1", "handle", "10:", "pfifo", "limit", "0"],
  ];
}

function cutFilter(device: string, to: number, toAddress: string): string[] {
  return ["tc", "filter", "add", "dev", device, "parent", "1:", "protocol", "ip", "pref", String(CUT_PREF_BASE + to), "u32", "match", "ip", "dst", `${toAddress}/32`, "flowid", "1:1"];
}

export interface NetworkOptions {
  readonly nodes: number;
  /** Goes into every name, so a later run can tell whether the owner is still alive. */
  readonly ownerPid: number;
}

export class Network {
  readonly namespaces: readonly string[];
  /** The address of the root namespace on the bridge: where the clients' requests come from. */
  readonly hostAddress: string;
  private readonly subnet: number;
  private readonly bridge: string;
  private readonly cuts = new Set<string>();
  private destroyed = false;

  private constructor(subnet: number, options: NetworkOptions) {
    this.subnet = subnet;
    this.bridge = `${BRIDGE_PREFIX}${subnet}`;
    this.hostAddress = `10.77.${subnet}.1`;
    this.namespaces = Array.from({ length: options.nodes }, (_, i) => `${PREFIX}${options.ownerPid}-${i + 1}`);
  }

  /**
   * Creates the bridge, the namespaces and their links. The subnet 10.77.K.0/24 is the first K
   * (from one derived from the pid) whose bridge name is free and that no route here overlaps;
   * creating the bridge claims K, so two runs at once take different ones. On a failure part
   * way, what was made is removed before the error is thrown.
   */
  static create(options: NetworkOptions): Network {
    const routes = run(["ip", "-4", "-o", "route", "show", "table", "all"]);
    for (let attempt = 0; attempt < 250; attempt++) {
      const subnet = ((options.ownerPid + attempt) % 250) + 2;
      if (routes.includes(`10.77.${subnet}.`) || !tryRun(["ip", "link", "add", `${BRIDGE_PREFIX}${subnet}`, "type", "bridge"])) continue;
      const network = new Network(subnet, options);
      try {
        network.build(options.ownerPid);
        return network;
      } catch (error) {
        network.destroy();
        throw error;
      }
    }
    throw new NetnsError(["ip", "link", "add", `${BRIDGE_PREFIX}K`], "no free subnet 10.77.K.0/24 for K in 2..251");
  }

  private build(ownerPid: number): void {
    run(["ip", "link", "set", "dev", this.bridge, "alias", `${OWNER_ALIAS}${ownerPid}`]);
    run(["ip", "addr", "add", `${this.hostAddress}/24`, "dev", this.bridge]);
    run(["ip", "link", "set", this.bridge, "up"]);
    this.namespaces.forEach((namespace, i) => {
      const id = i + 1;
      const outside = `synv${this.subnet}n${id}`;
      const inside = this.device(id);
      run(["ip", "netns", "add", namespace]);
      run(["ip", "link", "add", outside, "type", "veth", "peer", "name", inside, "netns", namespace]);
      run(["ip", "link", "set", outside, "master", this.bridge, "up"]);
      run(["ip", "-n", namespace, "addr", "add", `${this.address(id)}/24`, "dev", inside]);
      run(["ip", "-n", namespace, "link", "set", inside, "up"]);
      run(["ip", "-n", namespace, "link", "set", "lo", "up"]);
      for (const argv of dropQdisc(inside)) this.inNamespace(id, argv);
    });
  }

  /** Node `id`'s address (ids from 1). */
  address(id: number): string {
    return `10.77.${this.subnet}.${10 + id}`;
  }

  namespace(id: number): string {
    const namespace = this.namespaces[id - 1];
    if (namespace === undefined) throw new RangeError(`no node ${id}`);
    return namespace;
  }

  /** The command line that runs `argv` inside node `id`'s namespace (ip execs it: same pid). */
  commandIn(id: number, argv: readonly string[]): string[] {
    return ["ip", "netns", "exec", this.namespace(id), ...argv];
  }

  /** From now on, nothing `from` sends to `to` arrives. */
  cut(from: number, to: number): void {
    if (from === to || this.cuts.has(`${from}>${to}`)) return;
    this.inNamespace(from, cutFilter(this.device(from), to, this.address(to)));
    this.cuts.add(`${from}>${to}`);
  }

  /** Both directions between every node of `a` and every node of `b`. */
  cutBetween(a: readonly number[], b: readonly number[]): void {
    for (const x of a) {
      for (const y of b) {
        this.cut(x, y);
        this.cut(y, x);
      }
    }
  }

  heal(from: number, to: number): void {
    if (!this.cuts.has(`${from}>${to}`)) return;
    this.inNamespace(from, ["tc", "filter", "del", "dev", this.device(from), "parent", "1:", "pref", String(CUT_PREF_BASE + to)]);
    this.cuts.delete(`${from}>${to}`);
  }

  healAll(): void {
    for (const cut of [...this.cuts]) {
      const [from, to] = cut.split(">").map(Number) as [number, number];
      this.heal(from, to);
    }
  }

  /**
   * Packets the cuts have dropped so far, over every node: evidence that a partition was
   * one (a cut that drops nothing while the nodes talk is not cutting anything).
   */
  droppedPackets(): number {
    let dropped = 0;
    this.namespaces.forEach((namespace, i) => {
      const qdiscs = JSON.parse(run(["ip", "netns", "exec", namespace, "tc", "-s", "-j", "qdisc", "show", "dev", this.device(i + 1)])) as { handle?: string; drops?: number }[];
      dropped += qdiscs.find((qdisc) => qdisc.handle === "10:")?.drops ?? 0;
    });
    return dropped;
  }

  /** The cuts in force, as "from>to". */
  activeCuts(): string[] {
    return [...this.cuts].sort();
  }

  /**
   * Removes the veths, the namespaces and the bridge. Idempotent, never throws, synchronous (a
   * signal handler calls it). The veths go first and by name: a namespace outlives its name
   * while anything holds it, and a killed node's orphaned TCP sockets, still retransmitting
   * into a cut, hold it for minutes (seen after SIGTERM mid-partition); deleting one end of a
   * veth deletes both, whatever holds the namespace.
   */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.namespaces.forEach((_, i) => tryRun(["ip", "link", "del", `synv${this.subnet}n${i + 1}`]));
    for (const namespace of this.namespaces) tryRun(["ip", "netns", "del", namespace]);
    tryRun(["ip", "link", "del", this.bridge]);
  }

  /** Everything this network creates in the root namespace: its namespaces, bridge and veths. */
  names(): string[] {
    return [...this.namespaces, this.bridge, ...this.namespaces.map((_, i) => `synv${this.subnet}n${i + 1}`)];
  }

  /** The subnet, for the log. */
  describe(): string {
    return `10.77.${this.subnet}.0/24 on bridge ${this.bridge}`;
  }

  private device(id: number): string {
    return `synv${this.subnet}p${id}`;
  }

  private inNamespace(id: number, argv: readonly string[]): void {
    run(["ip", "netns", "exec", this.namespace(id), ...argv]);
  }
}

export function listNamespaces(): string[] {
  return run(["ip", "netns", "list"])
    .split("\n")
    .map((line) => line.split(" ")[0] ?? "")
    .filter((name) => name !== "");
}

export function listLinks(): { ifname: string; ifalias?: string }[] {
  return JSON.parse(run(["ip", "-j", "link", "show"])) as { ifname: string; ifalias?: string }[];
}

/**
 * Removes what crashed runs left: namespaces named synod-nem-<pid>-..., bridges whose alias
 * names an owner pid, when that process is gone, and veths synv<K>n<i> of such a bridge or
 * of none. Processes still inside such a namespace (a
 * node of the crashed run) are killed first. Returns what was removed, for the log.
 */
export function removeLeftovers(): string[] {
  const removed: string[] = [];
  for (const namespace of listNamespaces()) {
    const match = new RegExp(`^${PREFIX}(\\d+)-`).exec(namespace);
    if (match === null || isAlive(Number(match[1]))) continue;
    let pids: number[] = [];
    try {
      pids = run(["ip", "netns", "pids", namespace]).split("\n").filter((line) => line !== "").map(Number);
    } catch {
      // already gone
    }
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // exited meanwhile
      }
    }
    if (tryRun(["ip", "netns", "del", namespace])) removed.push(`namespace ${namespace}${pids.length > 0 ? ` (killed pids ${pids.join(",")})` : ""}`);
  }
  // Veths first (see Network.destroy): one whose bridge is gone, or is a dead run's, is a leftover.
  const links = listLinks();
  const deadOwner = (bridge: { ifalias?: string } | undefined): boolean => bridge?.ifalias?.startsWith(OWNER_ALIAS) === true && !isAlive(Number(bridge.ifalias.slice(OWNER_ALIAS.length)));
  for (const link of links) {
    const match = /^synv(\d+)n\d+$/.exec(link.ifname);
    if (match === null) continue;
    const bridge = links.find((other) => other.ifname === `${BRIDGE_PREFIX}${match[1]}`);
    if ((bridge === undefined || deadOwner(bridge)) && tryRun(["ip", "link", "del", link.ifname])) removed.push(`veth ${link.ifname}`);
  }
  for (const link of links) {
    if (link.ifname.startsWith(BRIDGE_PREFIX) && deadOwner(link) && tryRun(["ip", "link", "del", link.ifname])) removed.push(`bridge ${link.ifname}`);
  }
  return removed;
}
