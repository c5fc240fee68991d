// A user's state machine in the simulator: runs are a function of their seed; a correct
// module passes; a module that loses state on restore, or whose apply is not
// deterministic, or that throws, fails with the checker that names it.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Command, ReplicatedStateMachine } from "../../core/replica/embedded.js";
import { PROTOCOLS } from "../protocols.js";
import { reproduceCommand } from "../run-report.js";
import { runSimulation, type SimOptions } from "../simulation.js";
import type { SimApplication, StateMachineSimModule } from "./module.js";

type Input = { readonly op: "add"; readonly amount: number } | { readonly op: "total" };

/** A counter: each command adds its one byte to the total and returns the new total. */
class Counter implements ReplicatedStateMachine<number> {
  total = 0;
  apply(commands: readonly Command[]): number[] {
    return commands.map(({ data }) => (this.total += data[0] ?? 0));
  }
  snapshot(): Uint8Array {
    return new TextEncoder().encode(String(this.total));
  }
  restore(snapshot: Uint8Array): void {
    this.total = Number(new TextDecoder().decode(snapshot));
  }
}

function counterModule(create: () => ReplicatedStateMachine<number>): SimApplication {
  const module: StateMachineSimModule<number, Input, number, number, Counter> = {
    createStateMachine: () => create() as Counter,
    client: (random) => ({
      next: () => {
        if (random.chance(0.3)) return { kind: "read", input: { op: "total" } };
        const amount = random.int(1, 5);
        return { kind: "write", input: { op: "add", amount }, command: new Uint8Array([amount]) };
      },
    }),
    read: (machine) => machine.total,
    model: {
      init: () => 0,
      step: (total, input) => (input.op === "add" ? { state: total + input.amount, output: total + input.amount } : { state: total, output: total }),
    },
  };
  return { module: module as unknown as StateMachineSimModule, path: "test/counter.js", name: "counter" };
}

const run = (application: SimApplication, seed: number, extra: Partial<SimOptions> = {}) => runSimulation({ protocol: PROTOCOLS.get("raft") as SimOptions["protocol"], seed, application, ...extra });

describe("the simulator with a user's state machine", { timeout: 240_000 }, () => {
  test("a run is a function of its seed: the same history, the same statistics", () => {
    const application = counterModule(() => new Counter());
    const first = run(application, 5, { scenario: "mixed" });
    const second = run(application, 5, { scenario: "mixed" });
    assert.deepEqual(second.appHistory, first.appHistory);
    assert.deepEqual(second.stats, first.stats);
    assert.ok((first.appHistory?.length ?? 0) > 100, `${first.appHistory?.length} operations`);
    assert.equal(first.history.length, 0, "no KV history");
  });

  test("a correct state machine passes crashes, partitions, snapshots and membership changes", () => {
    const application = counterModule(() => new Counter());
    for (const scenario of ["mixed", "snapshot-crash", "reconfiguration", "leader-churn"]) {
      const result = run(application, 11, { scenario });
      assert.equal(result.failure, null, `${scenario}: ${result.failure?.checker}: ${result.failure?.message}`);
      assert.ok(result.stats.operations.ok > 50, `${scenario}: ${result.stats.operations.ok} operations succeeded`);
    }
  });

  test("one that forgets its state on restore is caught, by the model alone too, and the report says how to reproduce it", () => {
    class Forgetful extends Counter {
      override restore(): void {
        this.total = 0;
      }
    }
    const application = counterModule(() => new Forgetful());
    const result = run(application, 3, { scenario: "snapshot-crash" });
    assert.ok(result.failure !== null, "caught");
    assert.match(result.failure.checker, /^(determinism|linearizability)$/);
    assert.equal(reproduceCommand(result), "npx synod sim --protocol raft --state-machine test/counter.js --scenario snapshot-crash --seed 3");
    const modelOnly = run(application, 3, { scenario: "snapshot-crash", disabledCheckers: ["determinism"] });
    assert.equal(modelOnly.failure?.checker, "linearizability", modelOnly.failure?.message);
    assert.match(modelOnly.failure?.message ?? "", /not linearizable/);
  });

  test("an apply that is not deterministic is caught where two nodes disagree", () => {
    let instances = 0;
    // Each node's counter starts its own way: the same commands give different results.
    const application = counterModule(() => Object.assign(new Counter(), { total: instances++ }));
    const result = run(application, 7, { scenario: "basic-agreement" });
    assert.equal(result.failure?.checker, "determinism", result.failure?.message);
    assert.match(result.failure?.message ?? "", /computed applied \d+, but node \d computed applied \d+/);
  });

  test("a state machine that throws fails the run, naming the module's code", () => {
    class Throws extends Counter {
      override apply(commands: readonly Command[]): number[] {
        if (this.total > 20) throw new Error("the counter overflowed");
        return super.apply(commands);
      }
    }
    const result = run(counterModule(() => new Throws()), 7, { scenario: "basic-agreement" });
    assert.equal(result.failure?.checker, "module");
    assert.match(result.failure?.message ?? "", /state machine's apply threw: Error: the counter overflowed/);
  });
});
