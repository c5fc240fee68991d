/**
 * The deployment files stay true to the code: the Kubernetes manifests parse, and their
 * flags, ports, probes, peer names and volume agree with `synod node --help` and with each
 * other; the Dockerfile's command does too. (No cluster or container engine runs here: this
 * is what can be checked without one. `npm run test:pack` runs the image's command.)
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseAllDocuments, parse as parseYaml } from "yaml";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..");
const K8S = join(REPO, "deploy", "kubernetes");

// Only the fields the checks read.
interface ContainerPort {
  name: string;
  containerPort: number;
}
interface Probe {
  httpGet: { path: string; port: string | number };
}
interface Container {
  image: string;
  args: string[];
  env?: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports: ContainerPort[];
  readinessProbe: Probe;
  livenessProbe: Probe;
  volumeMounts: { name: string; mountPath: string }[];
}
interface Resource {
  kind: string;
  metadata: { name: string };
  spec: Record<string, unknown>;
}

/** The long options `synod node --help` lists. */
function nodeFlags(): Set<string> {
  const run = spawnSync(process.execPath, [join(REPO, "bin", "synod.js"), "node", "--help"], { encoding: "utf8" });
  assert.equal(run.status, 0, run.stderr);
  return new Set([...run.stdout.matchAll(/^\s+(?:-\w, )?(--[a-z][a-z-]*)/gm)].map((match) => match[1] as string));
}

/** `--flag value` pairs (and bare `--flag`s, as "") from an argument list that starts with the `node` command. */
function flagValues(args: readonly string[]): Map<string, string> {
  assert.equal(args[0], "node", "the container runs `synod node`");
  const flags = new Map<string, string>();
  for (let i = 1; i < args.length; i++) {
    const arg = args[i] as string;
    assert.ok(arg.startsWith("--"), `argument ${i} (${arg}) is a flag or a flag's value`);
    const next = args[i + 1];
    if (next !== undefined && !next.startsWith("--")) {
      flags.set(arg, next);
      i++;
    } else flags.set(arg, "");
  }
  return flags;
}

function portOf(hostPort: string | undefined): number {
  const match = /:(\d+)$/.exec(hostPort ?? "");
  assert.ok(match !== null, `${hostPort} ends in :PORT`);
  return Number(match[1]);
}

describe("deploy/kubernetes/synod.yaml", () => {
  const documents = parseAllDocuments(readFileSync(join(K8S, "synod.yaml"), "utf8"));
  for (const document of documents) assert.deepEqual(document.errors, [], "the YAML parses");
  const resources = documents.map((document) => document.toJS() as Resource);
  const find = (kind: string, predicate: (resource: Resource) => boolean = () => true): Resource => {
    const found = resources.find((resource) => resource.kind === kind && predicate(resource));
    assert.ok(found !== undefined, `a ${kind}`);
    return found;
  };
  const statefulSet = find("StatefulSet");
  const spec = statefulSet.spec as { serviceName: string; replicas: number; podManagementPolicy: string; template: { spec: { containers: Container[] } }; volumeClaimTemplates: { metadata: { name: string } }[] };
  const container = spec.template.spec.containers[0] as Container;
  const flags = flagValues(container.args);
  const portNamed = (name: string | number): number => {
    const port = container.ports.find((p) => p.name === name || p.containerPort === name);
    assert.ok(port !== undefined, `the container has a port ${name}`);
    return port.containerPort;
  };

  test("every flag the pods are started with is one synod node takes", () => {
    const known = nodeFlags();
    for (const flag of flags.keys()) assert.ok(known.has(flag), `synod node has no ${flag}`);
    assert.ok(flags.has("--id-from-hostname"), "each pod takes its id from its ordinal");
  });

  test("a headless Service that publishes pods before they are ready names the pods; Parallel start", () => {
    const headless = find("Service", (service) => service.metadata.name === spec.serviceName);
    assert.equal(headless.spec["clusterIP"], "None");
    assert.equal(headless.spec["publishNotReadyAddresses"], true, "peers must find each other before any is ready");
    assert.equal(spec.podManagementPolicy, "Parallel", "OrderedReady would wait for synod-0 to be ready, which needs a quorum");
  });

  test("--peers lists every replica by its pod's DNS name, on the peer port, ids from 1", () => {
    const peers = (flags.get("--peers") ?? "").split(",");
    assert.equal(peers.length, spec.replicas);
    peers.forEach((entry, i) => assert.equal(entry, `${i + 1}=${statefulSet.metadata.name}-${i}.${spec.serviceName}:${portNamed("peer")}`));
    assert.equal(portOf(flags.get("--peer")), portNamed("peer"));
  });

  test("HTTP: the listening port, the advertised URL and the probes agree", () => {
    assert.equal(portOf(flags.get("--http")), portNamed("http"));
    assert.equal(flags.get("--advertise-http"), `http://$(POD_NAME).${spec.serviceName}:${portNamed("http")}`);
    assert.equal(container.env?.find((variable) => variable.name === "POD_NAME")?.valueFrom?.fieldRef?.fieldPath, "metadata.name");
    assert.equal(container.readinessProbe.httpGet.path, "/readyz");
    assert.equal(container.livenessProbe.httpGet.path, "/healthz");
    assert.equal(portNamed(container.readinessProbe.httpGet.port), portNamed("http"));
    assert.equal(portNamed(container.livenessProbe.httpGet.port), portNamed("http"));
  });

  test("the data directory is the volume each pod claims", () => {
    const claim = spec.volumeClaimTemplates[0]?.metadata.name;
    assert.equal(container.volumeMounts.find((mount) => mount.name === claim)?.mountPath, flags.get("--data-dir"));
  });

  test("the Services' target ports are the container's, and the image is this version's", () => {
    for (const service of resources.filter((resource) => resource.kind === "Service")) {
      for (const port of service.spec["ports"] as { targetPort: string }[]) portNamed(port.targetPort);
    }
    const version = (JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { version: string }).version;
    assert.equal(container.image, `synod:${version}`);
  });

  test("kustomization.yaml applies the manifest", () => {
    assert.deepEqual((parseYaml(readFileSync(join(K8S, "kustomization.yaml"), "utf8")) as { resources: string[] }).resources, ["synod.yaml"]);
  });
});

describe("Dockerfile", () => {
  const text = readFileSync(join(REPO, "Dockerfile"), "utf8");
  const instruction = (name: string): string[] => [...text.matchAll(new RegExp(`^${name} (.+)$`, "gm"))].map((match) => match[1] as string);
  const command = JSON.parse(instruction("CMD").at(-1) ?? "[]") as string[];
  const flags = flagValues(command);

  test("the image's command is synod node with flags it takes, on the exposed ports and the volume", () => {
    assert.deepEqual(JSON.parse(instruction("ENTRYPOINT")[0] ?? "[]"), ["node", "/opt/synod/bin/synod.js"]);
    const known = nodeFlags();
    for (const flag of flags.keys()) assert.ok(known.has(flag), `synod node has no ${flag}`);
    const exposed = (instruction("EXPOSE")[0] ?? "").split(" ").map(Number);
    assert.ok(exposed.includes(portOf(flags.get("--http"))) && exposed.includes(portOf(flags.get("--peer"))), `EXPOSE ${exposed.join(" ")}`);
    assert.deepEqual(JSON.parse(instruction("VOLUME")[0] ?? "[]"), [flags.get("--data-dir")]);
  });

  test("both stages are Node 20 slim, as package.json's engines allow", () => {
    assert.deepEqual(instruction("FROM").map((line) => line.split(" ")[0]), ["node:20-slim", "node:20-slim"]);
  });
});
