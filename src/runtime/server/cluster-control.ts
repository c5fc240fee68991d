/**
 * Kill and restart for the nodes of a local cluster, from the dashboard. `synod cluster`
 * supervises its nodes' processes and listens on a loopback port for these two requests
 * (src/cli/cluster-control-server.ts); it tells each node where, and a secret, in the
 * environment (not the arguments, which any local user can read). A node passes an admin's
 * `POST /v1/debug/cluster` on to it; a node not started by `synod cluster` refuses (409).
 */
import { HttpError } from "./http-api.js";

export const CLUSTER_CONTROL_URL_ENV = "SYNOD_CLUSTER_CONTROL";
export const CLUSTER_CONTROL_TOKEN_ENV = "SYNOD_CLUSTER_CONTROL_TOKEN";
const CONTROL_TIMEOUT_MS = 5000;

export interface ClusterControl {
  readonly url: string;
  readonly token: string;
}

/** Kill or restart node `node`; or add a node (`node` 0), which joins the cluster. */
export type ClusterAction = "kill" | "restart" | "add";

/** The control channel `synod cluster` gave this process, or null. */
export function clusterControlFromEnvironment(env: NodeJS.ProcessEnv = process.env): ClusterControl | null {
  const url = env[CLUSTER_CONTROL_URL_ENV];
  const token = env[CLUSTER_CONTROL_TOKEN_ENV];
  if (url === undefined || token === undefined || url === "" || token === "") return null;
  return { url, token };
}

/** `{"node": ID, "action": "kill" | "restart"}` or `{"action": "add"}`; 400 otherwise. */
export function parseClusterAction(body: Uint8Array): { readonly node: number; readonly action: ClusterAction } {
  const shape = 'a cluster action is JSON: {"node": ID, "action": "kill" | "restart"}, or {"action": "add"}';
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body).toString("utf8"));
  } catch {
    throw new HttpError(400, "invalid_input", shape);
  }
  const { node, action } = (typeof parsed === "object" && parsed !== null ? parsed : {}) as Record<string, unknown>;
  if (action === "add" && node === undefined) return { node: 0, action };
  if (typeof node !== "number" || !Number.isSafeInteger(node) || node <= 0 || (action !== "kill" && action !== "restart")) throw new HttpError(400, "invalid_input", shape);
  return { node, action };
}

/** Asks the supervisor; its answer is relayed as it is (503 when it does not answer). */
export async function askClusterControl(control: ClusterControl | null, node: number, action: ClusterAction): Promise<{ readonly status: number; readonly body: object }> {
  if (control === null) {
    throw new HttpError(409, "not_local_cluster", "this node was not started by synod cluster: kill and restart from the dashboard are for local clusters only; stop and start a node of your own deployment as you started it");
  }
  try {
    const answer = await fetch(action === "add" ? `${control.url}/nodes/add` : `${control.url}/nodes/${node}/${action}`, { method: "POST", headers: { authorization: `Bearer ${control.token}` }, signal: AbortSignal.timeout(CONTROL_TIMEOUT_MS) });
    return { status: answer.status, body: (await answer.json()) as object };
  } catch (error) {
    throw new HttpError(503, "cluster_control_unreachable", `synod cluster, which supervises this node, did not answer at ${control.url}: ${(error as Error).message}`, { "retry-after": "1" });
  }
}
