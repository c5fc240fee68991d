import assert from "node:assert/strict";
import { test } from "node:test";
import { listMutants, runSim, UsageError } from "./sim-command.js";
import { reproduceCommand } from "../sim/run-report.js";

const base = { protocol: "raft", faults: null, scenario: "random", json: false, workers: 1, verbose: false } as const;

test("sim --groups: a bad count, or the routing mutant without groups, is a usage error that says what to do", async () => {
  await assert.rejects(runSim({ ...base, seed: 1, groups: 0 }), (error: unknown) => error instanceof UsageError && /--groups must be an integer from 1 to 64/.test(error.message));
  await assert.rejects(runSim({ ...base, seed: 1, mutant: "cross-group-delivery" }), (error: unknown) => error instanceof UsageError && /--groups 2 or more/.test(error.message));
  assert.match(listMutants(), /cross-group-delivery/);
});

test("sim --groups: the reproduction command carries the groups", () => {
  const request = { faults: null, scenario: "random" };
  assert.equal(reproduceCommand({ protocol: "raft", seed: 7, mutant: "cross-group-delivery", request: { ...request, groups: 4 } }), "npx synod sim --protocol raft --groups 4 --mutant cross-group-delivery --seed 7");
  assert.equal(reproduceCommand({ protocol: "raft", seed: 7, mutant: null, request }), "npx synod sim --protocol raft --seed 7");
});

test("sim --quiesce: Paxos, a quiescence mutant without it, or too many hot groups is a usage error; a reproduction carries both flags", async () => {
  await assert.rejects(runSim({ ...base, protocol: "paxos", seed: 1, groups: 2, quiesce: true }), (error: unknown) => error instanceof UsageError && /does not quiesce/.test(error.message));
  await assert.rejects(runSim({ ...base, seed: 1, groups: 2, mutant: "no-wake-on-leader-failure" }), (error: unknown) => error instanceof UsageError && /run it with --quiesce/.test(error.message));
  await assert.rejects(runSim({ ...base, seed: 1, groups: 2, quiesce: true, hotGroups: 3 }), (error: unknown) => error instanceof UsageError && /--hot-groups must be an integer from 1 to the number of groups \(2\)/.test(error.message));
  assert.match(listMutants(), /no-wake-on-leader-failure/);
  const request = { faults: null, scenario: "random", groups: 8, quiesce: true, hotGroups: 2 };
  assert.equal(reproduceCommand({ protocol: "raft", seed: 3, mutant: "no-wake-on-leader-failure", request }), "npx synod sim --protocol raft --groups 8 --quiesce --hot-groups 2 --mutant no-wake-on-leader-failure --seed 3");
});
