// @ts-check
// The lock service's state machine in the simulator: `npm run sim:example`, or
//   npx synod sim --state-machine examples/lock-service/sim.js --seeds 200
import { LockMachine } from "./lock-machine.js";
import { lockSimulation } from "./lock-sim.js";

export default lockSimulation(LockMachine, "lock-service");
