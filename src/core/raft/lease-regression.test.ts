// Regression (found in review): a late pre-vote rejection made a follower adopt a higher
// term, forget its leader and with it the vote guard behind that leader's lease; it then
// voted for a rival while the old leader still served reads from its lease (stale read).
import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULT_RAFT_CONFIG } from "./config.js";
import { data, TestCluster, type Envelope } from "./harness.test-util.js";

const cfg = { ...DEFAULT_RAFT_CONFIG, leaseReads: true };
// private peek, for the script only
const peek = (c: TestCluster, id: number, field: string): number => (c.engine(id) as unknown as Record<string, number>)[field] as number;

test("lease read goes stale: a stale rejected pre-vote response erases a follower's vote guard", () => {
  const c = new TestCluster(3, cfg);
  c.elect(1);
  c.engine(1).propose(data("a"));
  c.stabilize();
  c.tickAll(3);
  // align: start the blip just after L's CheckQuorum boundary
  while (peek(c, 1, "electionElapsed") !== 0) c.tickAll(1);

  const held: Envelope[] = [];
  const take = (pred: (e: Envelope) => boolean): Envelope[] => {
    const got = c.queue.filter(pred);
    c.queue = c.queue.filter((e) => !pred(e));
    return got;
  };
  const deliver = (es: Envelope[]): void => {
    for (const e of es) c.engine(e.to).step(e.from, e.message);
    c.flush();
  };
  const lockstep = (): void => {
    for (const id of c.ids) c.engine(id).tick();
    c.flush();
  };
  // A blip: node 1 hears nothing and reaches no one. Every node ticks at the same rate.
  const dropFromOrTo1 = (): void => void take((e) => e.from === 1 || e.to === 1);
  let ticks = 0;
  // whoever times out first plays V, the other F
  while (c.engine(2).status().role === "follower" && c.engine(3).status().role === "follower") {
    lockstep(); ticks++; dropFromOrTo1();
  }
  const V = c.engine(2).status().role === "precandidate" ? 2 : 3;
  const F = V === 2 ? 3 : 2;
  // V's pre-vote reaches F (F too has not heard from 1 for > electionTicks) and F grants it.
  deliver(take((e) => e.from === V && e.to === F));
  deliver(take((e) => e.from === F && e.to === V)); // V: candidate, term 2, votes for itself
  assert.equal(c.engine(V).status().role, "candidate");
  held.push(...take((e) => e.from === V && e.to === F)); // its real vote request is delayed
  dropFromOrTo1();
  while (c.engine(F).status().role === "follower") { lockstep(); ticks++; dropFromOrTo1(); held.push(...take((e) => e.from === V)); }
  // F's pre-vote reaches V, which refuses (it voted for itself in term 2); the refusal is delayed
  deliver(take((e) => e.from === F && e.to === V));
  const refusal = take((e) => e.from === V && e.to === F);
  assert.equal(refusal.length, 1);
  dropFromOrTo1();
  assert.equal(c.engine(1).status().role, "leader", "L survived the blip (CheckQuorum)");
  // The link 1<->F heals (1<->V stays cut). L heartbeats; F follows it again and acknowledges.
  lockstep(); ticks++;
  take((e) => e.from === V || e.to === V);
  deliver(take((e) => e.from === 1 && e.to === F));
  deliver(take((e) => e.from === F && e.to === 1));
  assert.equal(c.engine(F).status().leader, 1);
  // Now, with no time passing, the delayed messages arrive at F.
  deliver(refusal); // term 2, leader forgotten: the guard is gone
  deliver(held.filter((e) => e.message.type === "vote" && !e.message.preVote));
  c.partition([1], [2, 3]);
  c.stabilize(); // F grants; V leads term 2, commits its no-op
  c.engine(V).propose(data("b"));
  c.stabilize();
  c.tick(V, 1); c.stabilize();
  // A client now reads from the old leader.
  c.engine(1).readIndex(99);
  c.flush();
  const rs = c.readStates.get(1) ?? [];
  const bAt = (c.applied.get(V) ?? []).find((e) => new TextDecoder().decode(e.data) === "b")?.index;
  console.log({ ticks, rs, bAt, commit1: c.engine(1).status().commitIndex, applied1: c.appliedData(1), appliedV: c.appliedData(V) });
  const stale = bAt !== undefined && rs.some((r) => r.index < bAt);
  assert.ok(!stale, `node 1 served a lease read at ${rs[0]?.index} after node ${V} committed and applied "b" at ${bAt}`);
});
