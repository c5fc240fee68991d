/**
 * The embedding API's runtime host, in process over real TCP on loopback and real data
 * directories: proposals through any member, the read barrier, recovery from snapshot and
 * log after a restart, a leader stopped under load, and the errors a caller gets.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { InvalidInputError, NotLeaderError } from "../../core/common/errors.js";
import type { Command, ReplicatedStateMachine } from "../../core/replica/embedded.js";
import { StoppedError } from "../../core/replica/errors.js";
import { StartupError } from "../server/data-dir.js";
import { freePorts, sleep } from "../server/process-cluster.test-util.js";
import { ReplicatedNode, type ReplicatedNodeOptions } from "./replicated-node.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A register per name: "name=value" sets it and returns the value before (null for none). */
class Registers implements ReplicatedStateMachine<string | null> {
  values = new Map<string, string>();
  restores = 0;
  applied = 0;
  apply(commands: readonly Command[]): (string | null)[] {
    return commands.map(({ data }) => {
      this.applied++;
      const [name, value] = decoder.decode(data).split("=") as [string, string];
      const before = this.values.get(name) ?? null;
      this.values.set(name, value);
      return before;
    });
  }
  snapshot(): Uint8Array {
    return encoder.encode(JSON.stringify([...this.values]));
  }
  restore(snapshot: Uint8Array): void {
    this.restores++;
    this.values = new Map(JSON.parse(decoder.decode(snapshot)) as [string, string][]);
  }
}

interface Member {
  readonly id: number;
  readonly dataDir: string;
  machine: Registers;
  node: ReplicatedNode<string | null> | null;
}

class Cluster {
  readonly members: Member[];
  constructor(
    readonly root: string,
    readonly peers: Record<number, string>,
    private readonly extra: Partial<ReplicatedNodeOptions<string | null>> = {},
  ) {
    this.members = Object.keys(peers).map((id) => ({ id: Number(id), dataDir: join(root, `node-${id}`), machine: new Registers(), node: null }));
  }

  static async create(size: number, extra: Partial<ReplicatedNodeOptions<string | null>> = {}): Promise<Cluster> {
    const ports = await freePorts(size);
    const peers = Object.fromEntries(ports.map((port, i) => [i + 1, `127.0.0.1:${port}`]));
    return new Cluster(mkdtempSync(join(tmpdir(), "synod-embed-")), peers, extra);
  }

  member(id: number): Member {
    return this.members[id - 1] as Member;
  }

  async start(id: number): Promise<ReplicatedNode<string | null>> {
    const member = this.member(id);
    member.machine = new Registers();
    member.node = await ReplicatedNode.start({ id, dataDir: member.dataDir, peers: this.peers, stateMachine: member.machine, tickMs: 20, electionTicks: 10, requestTimeoutMs: 4000, ...this.extra });
    return member.node;
  }

  async stop(id: number): Promise<void> {
    const member = this.member(id);
    await member.node?.stop();
    member.node = null;
  }

  async leader(timeoutMs = 10_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      for (const member of this.members) if (member.node?.status().role === "leader") return member.id;
      await sleep(20);
    }
    throw new Error("no leader elected");
  }

  async close(): Promise<void> {
    for (const member of this.members) await member.node?.stop();
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** Proposes until a leader takes it (elections under way refuse with NotLeaderError). */
async function proposeRetrying(node: ReplicatedNode<string | null>, text: string): Promise<string | null> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await node.propose(encoder.encode(text));
    } catch (error) {
      if (!(error instanceof NotLeaderError) || attempt > 200) throw error;
      await sleep(25);
    }
  }
}

describe("ReplicatedNode", { timeout: 120_000 }, () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await Cluster.create(3, { snapshotEntries: 20 });
    for (const id of [1, 2, 3]) await cluster.start(id);
  });
  after(async () => cluster.close());

  test("a command proposed through a follower returns its result there, and every member applies it", async () => {
    const leader = await cluster.leader();
    const follower = ([1, 2, 3].find((id) => id !== leader) as number);
    const node = cluster.member(follower).node as ReplicatedNode<string | null>;
    assert.equal(await proposeRetrying(node, "x=1"), null);
    assert.equal(await node.propose(encoder.encode("x=2")), "1");
    for (const member of cluster.members) {
      await member.node?.read();
      assert.equal(member.machine.values.get("x"), "2", `node ${member.id} after the read barrier`);
    }
    const status = node.status();
    assert.equal(status.leader, leader);
    assert.deepEqual(status.members.map((m) => m.id), [1, 2, 3]);
    assert.ok(status.appliedIndex >= 2);
  });

  test("concurrent commands from every member each apply once, each result to its own caller", async () => {
    const results = await Promise.all(
      cluster.members.flatMap((member) => Array.from({ length: 30 }, (_, i) => (member.node as ReplicatedNode<string | null>).propose(encoder.encode(`m${member.id}-${i}=v`)))),
    );
    assert.ok(results.every((result) => result === null), "each name was set once: no command applied twice");
    const leader = cluster.member(await cluster.leader()).node as ReplicatedNode<string | null>;
    await leader.read();
    const machine = cluster.member(leader.id).machine;
    for (const member of cluster.members) for (let i = 0; i < 30; i++) assert.equal(machine.values.get(`m${member.id}-${i}`), "v");
  });

  test("a restarted member rebuilds its state from its snapshot and its log", async () => {
    const leader = await cluster.leader();
    const victim = [1, 2, 3].find((id) => id !== leader) as number;
    for (let i = 0; i < 45; i++) await proposeRetrying(cluster.member(leader).node as ReplicatedNode<string | null>, `r${i}=${i}`);
    const before = cluster.member(victim).node?.status();
    assert.ok((before?.snapshotIndex ?? 0) > 0, `node ${victim} took a snapshot (snapshotEntries 20)`);
    await cluster.stop(victim);
    const node = await cluster.start(victim);
    const machine = cluster.member(victim).machine;
    assert.equal(machine.restores, 1, "restored from its snapshot at start");
    assert.ok(machine.applied > 0 && machine.applied < 45, `then replayed the log after it (${machine.applied} commands) before start resolved`);
    await node.read();
    assert.equal(machine.values.get("r44"), "44");
    assert.equal(machine.values.get("x"), "2");
  });

  test("with the leader stopped, the others elect another and go on; it catches up when back", async () => {
    const leader = await cluster.leader();
    const others = [1, 2, 3].filter((id) => id !== leader);
    let writing = true;
    let acknowledged = 0;
    // A command forwarded to the leader as it stops is lost with it: its caller hears
    // nothing until the request timeout, so each writer gives up after 300 ms and goes on.
    const writers = [0, 1].map(async (w) => {
      for (let i = 0; writing; i++) {
        try {
          await (cluster.member(others[(i + w) % 2] as number).node as ReplicatedNode<string | null>).propose(encoder.encode(`load${w}=${i}`), { signal: AbortSignal.timeout(300) });
          acknowledged++;
        } catch {
          await sleep(10);
        }
      }
    });
    await sleep(200);
    await cluster.stop(leader);
    const successor = await cluster.leader();
    assert.notEqual(successor, leader);
    const before = acknowledged;
    await sleep(500);
    writing = false;
    await Promise.all(writers);
    assert.ok(acknowledged > before, `writes go on under node ${successor} (${acknowledged - before} after the failover)`);
    const node = await cluster.start(leader);
    await sleep(500); // for commands whose callers gave up, still on their way
    await node.read();
    const expected = cluster.member(successor).machine;
    await (cluster.member(successor).node as ReplicatedNode<string | null>).read();
    assert.deepEqual(cluster.member(leader).machine.values, expected.values);
  });

  test("leadership moves to the member asked for; a follower says who leads", async () => {
    const leader = await cluster.leader();
    const target = [1, 2, 3].find((id) => id !== leader) as number;
    const follower = [1, 2, 3].find((id) => id !== leader && id !== target) as number;
    await assert.rejects(cluster.member(follower).node?.transferLeadership(target) as Promise<unknown>, (error: unknown) => error instanceof NotLeaderError && error.leaderHint === leader);
    const moved = await cluster.member(leader).node?.transferLeadership(target);
    assert.equal(moved?.leader, target);
  });

  test("an aborted wait rejects as outcome unknown; a stopped node refuses", async () => {
    const node = cluster.member(await cluster.leader()).node as ReplicatedNode<string | null>;
    const controller = new AbortController();
    const pending = node.propose(encoder.encode("a=1"), { signal: controller.signal });
    controller.abort();
    await assert.rejects(pending, (error: unknown) => (error as { name?: string; outcomeUnknown?: boolean }).name === "AbortedError" && (error as { outcomeUnknown: boolean }).outcomeUnknown);
    await assert.rejects(node.propose(encoder.encode("b=1"), { signal: AbortSignal.abort() }), (error: unknown) => (error as { outcomeUnknown?: boolean }).outcomeUnknown === false);
    await assert.rejects(node.propose("text" as unknown as Uint8Array), InvalidInputError);
  });
});

describe("ReplicatedNode start-up checks", { timeout: 30_000 }, () => {
  test("bad options are refused with the option named", async () => {
    const machine = new Registers();
    const base = { id: 1, dataDir: "/tmp/unused", peers: { 1: "127.0.0.1:1" }, stateMachine: machine };
    await assert.rejects(ReplicatedNode.start({ ...base, id: 0 }), (e: unknown) => e instanceof InvalidInputError && /id must be a positive integer/.test(e.message));
    await assert.rejects(ReplicatedNode.start({ ...base, peers: { 2: "127.0.0.1:1" } }), (e: unknown) => e instanceof InvalidInputError && /must list this node/.test(e.message));
    await assert.rejects(ReplicatedNode.start({ ...base, peers: { 1: "nowhere" } }), (e: unknown) => e instanceof InvalidInputError && /HOST:PORT/.test(e.message));
    await assert.rejects(ReplicatedNode.start({ ...base, consensus: "zab" }), (e: unknown) => e instanceof InvalidInputError && /consensus must be one of/.test(e.message));
    await assert.rejects(ReplicatedNode.start({ ...base, stateMachine: {} as never }), (e: unknown) => e instanceof InvalidInputError && /apply\(commands\)/.test(e.message));
    await assert.rejects(ReplicatedNode.start({ ...base, join: { clusterId: "c" } }), (e: unknown) => e instanceof InvalidInputError && /not this node/.test(e.message));
    await assert.rejects(ReplicatedNode.start({ ...base, id: 2, join: { clusterId: "c" } }), (e: unknown) => e instanceof InvalidInputError && /needs listen/.test(e.message));
  });

  test("a data directory of another node, or in use, is refused with what to do", async () => {
    const root = mkdtempSync(join(tmpdir(), "synod-embed-dir-"));
    try {
      const [port] = await freePorts(1);
      const peers = { 1: `127.0.0.1:${port}` };
      const dataDir = join(root, "one");
      const node = await ReplicatedNode.start({ id: 1, dataDir, peers, stateMachine: new Registers(), tickMs: 20 });
      await assert.rejects(ReplicatedNode.start({ id: 1, dataDir, peers, stateMachine: new Registers() }), (e: unknown) => e instanceof StartupError && /in use by another process|in use/.test(e.message));
      await node.stop();
      await assert.rejects(ReplicatedNode.start({ id: 2, dataDir, peers: { 2: `127.0.0.1:${port}` }, stateMachine: new Registers() }), (e: unknown) => e instanceof StartupError && /belongs to node 1/.test(e.message));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test("a state machine that throws in apply stops the node and reaches onFatal; waiting calls reject", async () => {
    const root = mkdtempSync(join(tmpdir(), "synod-embed-fatal-"));
    try {
      const [port] = await freePorts(1);
      const failures: unknown[] = [];
      const machine: ReplicatedStateMachine<number> = {
        apply: (commands) => commands.map(({ data }) => {
          if (decoder.decode(data) === "boom") throw new Error("boom in apply");
          return data.length;
        }),
        snapshot: () => new Uint8Array(0),
        restore: () => undefined,
      };
      const node = await ReplicatedNode.start({ id: 1, dataDir: join(root, "n"), peers: { 1: `127.0.0.1:${port}` }, stateMachine: machine, tickMs: 20, onFatal: (error) => failures.push(error) });
      assert.equal(await proposeRetrying(node as unknown as ReplicatedNode<string | null>, "ok"), 2);
      await assert.rejects(node.propose(encoder.encode("boom")), (error: unknown) => (error as Error).name === "WriteOutcomeUnknownError");
      for (let i = 0; i < 100 && failures.length === 0; i++) await sleep(10);
      assert.equal((failures[0] as Error | undefined)?.message, "boom in apply");
      await assert.rejects(node.propose(encoder.encode("after")), StoppedError);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("ReplicatedNode membership changes", { timeout: 120_000 }, () => {
  let cluster: Cluster;
  let root: string;
  const joiner: { node: ReplicatedNode<string | null> | null; machine: Registers; options: ReplicatedNodeOptions<string | null> | null } = { node: null, machine: new Registers(), options: null };
  before(async () => {
    cluster = await Cluster.create(3, { snapshotEntries: 10 });
    for (const id of [1, 2, 3]) await cluster.start(id);
    root = mkdtempSync(join(tmpdir(), "synod-embed-join-"));
  });
  after(async () => {
    await joiner.node?.stop();
    await cluster.close();
    rmSync(root, { recursive: true, force: true });
  });

  const leaderNode = async (): Promise<ReplicatedNode<string | null>> => cluster.member(await cluster.leader()).node as ReplicatedNode<string | null>;

  test("a fourth node joins, catches up (past a snapshot), becomes a voter and takes commands", async () => {
    for (let i = 0; i < 25; i++) await proposeRetrying(await leaderNode(), `before${i}=${i}`);
    const [port] = await freePorts(1);
    const address = `127.0.0.1:${port}`;
    const leader = await leaderNode();
    joiner.options = { id: 4, dataDir: join(root, "node-4"), peers: cluster.peers, listen: address, join: { clusterId: leader.clusterId }, stateMachine: joiner.machine, tickMs: 20, electionTicks: 10 };
    joiner.node = await ReplicatedNode.start(joiner.options);
    const follower = cluster.members.find((member) => member.node !== null && member.id !== leader.id)?.node as ReplicatedNode<string | null>;
    await assert.rejects(follower.addMember(4, address), (error: unknown) => error instanceof NotLeaderError && error.leaderHint === leader.id);
    await assert.rejects(leader.addMember(2, "127.0.0.1:1"), (error: unknown) => error instanceof InvalidInputError && /already a member/.test(error.message));
    await leader.addMember(4, address);
    const deadline = Date.now() + 10_000;
    while (joiner.node.status().members.find((m) => m.id === 4)?.role !== "voter" && Date.now() < deadline) await sleep(50);
    assert.equal(joiner.node.status().members.find((m) => m.id === 4)?.role, "voter", "promoted once caught up");
    assert.equal(await joiner.node.propose(encoder.encode("joined=yes")), null);
    await joiner.node.read();
    assert.equal(joiner.machine.values.get("before24"), "24");
    assert.ok(joiner.machine.restores >= 1, "it installed the leader's snapshot: the log before it was gone");
    assert.equal(joiner.machine.values.get("joined"), "yes");
    assert.deepEqual((await leaderNode()).status().members.map((m) => m.id), [1, 2, 3, 4]);
  });

  test("a member removed (the leader itself here) leaves; the others go on, and it serves no reads", async () => {
    const leader = await leaderNode();
    const removed = leader.id;
    await leader.removeMember(removed);
    const successor = await (async () => {
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline) {
        for (const node of [...cluster.members.map((m) => m.node), joiner.node]) if (node !== null && node.id !== removed && node.status().role === "leader") return node;
        await sleep(50);
      }
      throw new Error("no new leader after the leader removed itself");
    })();
    assert.deepEqual(successor.status().members.map((m) => m.id).sort(), [1, 2, 3, 4].filter((id) => id !== removed));
    assert.equal(await (joiner.node as ReplicatedNode<string | null>).propose(encoder.encode("after=removal")), null);
    await assert.rejects(cluster.member(removed).node?.read() as Promise<void>, (error: unknown) => (error as { code?: string }).code === "not_member");
  });

  test("the node that joined restarts as a member, from its own log", async () => {
    await joiner.node?.stop();
    joiner.machine = new Registers();
    joiner.node = await ReplicatedNode.start({ ...(joiner.options as ReplicatedNodeOptions<string | null>), stateMachine: joiner.machine });
    await joiner.node.read();
    assert.equal(joiner.machine.values.get("after"), "removal");
    assert.ok(joiner.node.status().members.some((m) => m.id === 4 && m.role === "voter"));
  });
});

describe("ReplicatedNode on Multi-Paxos", { timeout: 120_000 }, () => {
  test("commands through a follower apply on every member; with the leader stopped the others go on; the directory keeps its protocol", async () => {
    const cluster = await Cluster.create(3, { consensus: "paxos" });
    try {
      for (const id of [1, 2, 3]) await cluster.start(id);
      const leader = await cluster.leader();
      const follower = [1, 2, 3].find((id) => id !== leader) as number;
      const node = cluster.member(follower).node as ReplicatedNode<string | null>;
      assert.equal(await proposeRetrying(node, "x=1"), null);
      assert.equal(await node.propose(encoder.encode("x=2")), "1");
      assert.equal(node.status().consensus, "paxos");
      await cluster.stop(leader);
      assert.equal(await proposeRetrying(node, "x=3"), "2");
      for (const id of [1, 2, 3].filter((id) => id !== leader)) {
        await cluster.member(id).node?.read();
        assert.equal(cluster.member(id).machine.values.get("x"), "3", `node ${id}`);
      }
      const { dataDir } = cluster.member(leader);
      await assert.rejects(
        ReplicatedNode.start({ id: leader, dataDir, peers: cluster.peers, stateMachine: new Registers() }),
        (e: unknown) => e instanceof StartupError && /holds a paxos log, and this node was started with --consensus raft/.test(e.message),
      );
    } finally {
      await cluster.close();
    }
  });
});
