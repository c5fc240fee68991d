// @ts-check
/**
 * The lock service in the simulator: the pieces `synod sim --state-machine` needs around a
 * state machine (docs/embedding.md, "Testing in the simulator"). sim.js runs the real
 * LockMachine with it, sim-broken.js the forgetful one.
 *
 * Each simulated client is an owner that acquires, releases (now and then with a wrong
 * token) and reads who holds two locks; the model is one lock per partition, so the
 * checker looks at each lock's history alone.
 */
import { encodeCommand } from "./lock-machine.js";

const LOCKS = ["a", "b"];

/**
 * @typedef {import("./lock-machine.js").LockResult} LockResult
 * @typedef {import("./lock-machine.js").Holder} Holder
 * @typedef {import("./lock-machine.js").LockCommand | { op: "holder", lock: string }} LockInput
 * @typedef {LockResult | Holder | null} LockOutput
 * @typedef {{ holder: Holder | null, token: number }} LockState
 */

/**
 * The sequential specification of one lock: what the service must behave like, one
 * operation at a time.
 * @type {import("synod").SequentialModel<LockState, LockInput, LockOutput>}
 */
export const lockModel = {
  init: () => ({ holder: null, token: 0 }),
  step(state, input) {
    switch (input.op) {
      case "acquire": {
        if (state.holder !== null) return { state, output: { ok: false, holder: state.holder.owner } };
        const token = state.token + 1;
        return { state: { holder: { owner: input.owner, token }, token }, output: { ok: true, token } };
      }
      case "release": {
        const held = state.holder !== null && state.holder.owner === input.owner && state.holder.token === input.token;
        return held ? { state: { holder: null, token: state.token }, output: { ok: true } } : { state, output: { ok: false } };
      }
      case "holder":
        return { state, output: state.holder };
    }
  },
  partition: (input) => input.lock,
  describe(input, output) {
    const what = input.op === "release" ? `release ${input.lock} by ${input.owner} with token ${input.token}` : input.op === "acquire" ? `acquire ${input.lock} by ${input.owner}` : `who holds ${input.lock}`;
    return output === undefined ? what : `${what} -> ${JSON.stringify(output)}`;
  },
};

/**
 * @param {new () => import("./lock-machine.js").LockMachine} Machine
 * @param {string} name
 * @returns {import("synod").StateMachineSimModule<LockResult, LockInput, LockOutput, LockState, import("./lock-machine.js").LockMachine>}
 */
export function lockSimulation(Machine, name) {
  return {
    name,
    createStateMachine: () => new Machine(),
    client(random, clientId) {
      const owner = `client-${clientId}`;
      /** @type {Map<string, number>} the locks this client believes it holds, with their tokens */
      const held = new Map();
      /** @type {Set<string>} locks it holds without knowing the token (an acquire that timed out): read them */
      const unsure = new Set();
      return {
        next() {
          const lock = random.pick(LOCKS);
          const roll = random.float();
          if (unsure.has(lock) || roll < 0.2) return { kind: "read", input: { op: "holder", lock } };
          const token = held.get(lock);
          /** @type {import("./lock-machine.js").LockCommand} */
          const command = token === undefined ? { op: "acquire", lock, owner } : { op: "release", lock, owner, token: roll < 0.9 ? token : token - 1 };
          return { kind: "write", input: command, command: encodeCommand(command) };
        },
        observe(input, outcome) {
          if (outcome.status !== "ok") return;
          const output = outcome.output;
          if (input.op === "holder") {
            unsure.delete(input.lock);
            const holder = /** @type {Holder | null} */ (output);
            if (holder !== null && holder.owner === owner) held.set(input.lock, holder.token);
            else held.delete(input.lock);
            return;
          }
          const result = /** @type {LockResult} */ (output);
          if (input.op === "acquire" && "token" in result) held.set(input.lock, result.token);
          if (input.op === "acquire" && "holder" in result && result.holder === owner) unsure.add(input.lock);
          if (input.op === "release" && result.ok) held.delete(input.lock);
        },
      };
    },
    read: (machine, input) => machine.holder(input.lock),
    model: lockModel,
  };
}
