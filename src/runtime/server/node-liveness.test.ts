import assert from "node:assert/strict";
import { test } from "node:test";
import type { Membership, NodeId } from "../../core/engine/contract.js";
import type { GroupReplica } from "./group-replica.js";
import { PeerLiveness, PING_EVERY_TICKS, RETURN_WAKES_PER_TICK } from "./node-liveness.js";

/** A range as liveness sees it: quiet or not, its leader, its voters, and what it was asked to do. */
class FakeRange {
  heartbeats = 0;
  wakes = 0;

  constructor(
    readonly id: number,
    public quiet: boolean,
    public leader: NodeId | null,
    readonly voters: readonly NodeId[],
  ) {}

  asReplica(): GroupReplica {
    const membership: Membership = { voters: [...this.voters], outgoing: [], learners: [], autoPromote: [], autoLeave: true, context: new Uint8Array(0) };
    return {
      group: this.id,
      engine: { quiescent: () => this.quiet, status: () => ({ leader: this.leader }) },
      membership: () => membership,
      driver: {
        heartbeat: () => {
          this.heartbeats++;
          this.quiet = false;
        },
        wake: () => {
          this.wakes++;
          this.quiet = false;
        },
      },
    } as unknown as GroupReplica;
  }
}

function setup(ranges: FakeRange[]): { liveness: PeerLiveness; sent: { to: NodeId; message: unknown }[]; logged: string[] } {
  const sent: { to: NodeId; message: unknown }[] = [];
  const logged: string[] = [];
  const replicas = ranges.map((range) => range.asReplica());
  const liveness = new PeerLiveness({
    self: 1,
    peers: [1, 2, 3],
    tickMs: 50,
    suspectAfterTicks: 10,
    network: { send: (to, message) => sent.push({ to, message }) > 0 },
    replicas: () => replicas,
    log: (message) => void logged.push(message),
    boot: 42,
  });
  return { liveness, sent, logged };
}

test("pings and answers carry the boot id; a ping is answered with this process's", () => {
  const { liveness, sent } = setup([]);
  for (let i = 0; i < PING_EVERY_TICKS; i++) liveness.tick();
  assert.deepEqual(sent, [
    { to: 2, message: { type: "liveness-ping", boot: 42 } },
    { to: 3, message: { type: "liveness-ping", boot: 42 } },
  ]);
  liveness.receive(2, { type: "liveness-ping", boot: 7 });
  assert.deepEqual(sent[2], { to: 2, message: { type: "liveness-pong", boot: 42 } });
});

test("a peer that restarted: the quiet ranges led here that it is a member of heartbeat, those still following it elect, the rest are left alone", () => {
  const ledWithPeer = new FakeRange(1, true, 1, [1, 2, 3]);
  const followsPeer = new FakeRange(2, true, 2, [1, 2, 3]);
  const ledWithoutPeer = new FakeRange(3, true, 1, [1, 3]);
  const awake = new FakeRange(4, false, 1, [1, 2, 3]);
  const ledByOther = new FakeRange(5, true, 3, [1, 2, 3]);
  const { liveness, logged } = setup([ledWithPeer, followsPeer, ledWithoutPeer, awake, ledByOther]);
  liveness.receive(2, { type: "liveness-pong", boot: 7 });
  liveness.tick();
  assert.equal(ledWithPeer.heartbeats + followsPeer.wakes, 0, "the first answer of a peer is no return");
  liveness.receive(2, { type: "liveness-pong", boot: 7 });
  liveness.tick();
  assert.equal(ledWithPeer.heartbeats, 0, "the same boot again is no return");
  liveness.receive(2, { type: "liveness-pong", boot: 8 });
  liveness.tick();
  assert.equal(ledWithPeer.heartbeats, 1);
  assert.equal(followsPeer.wakes, 1);
  assert.deepEqual([ledWithPeer.wakes, followsPeer.heartbeats, ledWithoutPeer.heartbeats + ledWithoutPeer.wakes, awake.heartbeats + awake.wakes, ledByOther.heartbeats + ledByOther.wakes], [0, 0, 0, 0, 0]);
  assert.equal(liveness.returnWakes, 2);
  assert.match(logged.join("\n"), /a peer restarted/);
});

test("a peer heard again after it was suspected, from the same process, wakes nothing (under load suspicions come and go)", () => {
  const ledWithPeer = new FakeRange(1, true, 1, [1, 2, 3]);
  const followsPeer = new FakeRange(3, true, 3, [1, 2, 3]);
  const { liveness } = setup([ledWithPeer, followsPeer]);
  liveness.receive(3, { type: "liveness-pong", boot: 9 });
  // Node 3 goes silent until suspected (which wakes the range it leads), then answers again.
  for (let i = 0; i < 12; i++) liveness.tick();
  assert.equal(followsPeer.wakes, 1, "the range node 3 leads was woken when it was suspected");
  followsPeer.quiet = true;
  liveness.receive(3, { type: "liveness-pong", boot: 9 });
  liveness.tick();
  assert.equal(ledWithPeer.heartbeats, 0);
  assert.equal(followsPeer.wakes, 1);
  assert.equal(liveness.returnWakes, 0);
});

test("the wakes for a returning peer go at most RETURN_WAKES_PER_TICK a tick, and skip a range woken meanwhile", () => {
  const count = RETURN_WAKES_PER_TICK * 2 + 5;
  const ranges = Array.from({ length: count }, (_, i) => new FakeRange(i + 1, true, 1, [1, 2, 3]));
  const { liveness } = setup(ranges);
  liveness.receive(2, { type: "liveness-pong", boot: 1 });
  liveness.receive(2, { type: "liveness-pong", boot: 2 });
  (ranges[count - 1] as FakeRange).quiet = false;
  liveness.tick();
  assert.equal(liveness.returnWakes, RETURN_WAKES_PER_TICK);
  liveness.tick();
  liveness.tick();
  assert.equal(liveness.returnWakes, count - 1);
  assert.equal((ranges[count - 1] as FakeRange).heartbeats, 0, "a range awake again by itself is not woken");
});
