// @ts-check
// The forgetful lock service (it loses its holders when it restores a snapshot), which the
// simulator catches: `npm run sim:example-broken`, or
//   npx synod sim --state-machine examples/lock-service/sim-broken.js --seeds 200
import { ForgetfulLockMachine } from "./lock-machine.js";
import { lockSimulation } from "./lock-sim.js";

export default lockSimulation(ForgetfulLockMachine, "lock-service (forgetful)");
