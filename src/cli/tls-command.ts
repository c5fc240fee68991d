/**
 * `synod tls issue`: a CA of the cluster's own and the certificates of its nodes and
 * clients, for clusters started with `synod node` (`synod cluster --tls` does the same by
 * itself). The CA is made in the directory on first use and kept.
 */
import { resolve } from "node:path";
import { type Command, InvalidArgumentError } from "commander";
import { openLocalCa } from "../runtime/tls/local-ca.js";
import { TlsConfigError } from "../runtime/tls/material.js";

interface IssueFlags {
  dir: string;
  node?: number;
  hosts: string[];
  client: boolean;
  renew: boolean;
}

function nodeId(text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value <= 0) throw new InvalidArgumentError("--node must be a positive integer (the node's id)");
  return value;
}

function hostList(text: string): string[] {
  return text
    .split(",")
    .map((host) => host.trim())
    .filter((host) => host !== "");
}

export function registerTlsCommand(program: Command, setExitCode: (code: number) => void): void {
  const tls = program.command("tls").description("certificates for a cluster: a CA of its own, and its nodes' and clients' certificates");
  tls
    .command("issue")
    .description("issue a node's certificate (--node ID) or a client's (--client), making the CA in --dir first if it has none")
    .option("--dir <dir>", "where the CA and the certificates are kept (ca.pem, ca-key.pem, node-<id>.pem, ...)", "./tls")
    .option("--node <id>", "issue node <id>'s certificate (it names urn:synod:node:<id>)", nodeId)
    .option("--hosts <list>", "host names and IP addresses clients reach the node by, comma-separated (localhost and 127.0.0.1 are always in)", hostList, [])
    .option("--client", "issue a client certificate (client.pem, client-key.pem)", false)
    .option("--renew", "issue again even if the certificate exists (then send the node SIGHUP)", false)
    .addHelpText(
      "after",
      `
Example, three nodes on three machines:
  synod tls issue --dir tls --node 1 --hosts db1.example.internal,10.0.0.1
  synod tls issue --dir tls --node 2 --hosts db2.example.internal,10.0.0.2
  synod tls issue --dir tls --node 3 --hosts db3.example.internal,10.0.0.3
Copy node-<id>.pem, node-<id>-key.pem and ca.pem to node <id>; keep ca-key.pem elsewhere. Then:
  synod node --id 1 ... --tls-cert node-1.pem --tls-key node-1-key.pem --tls-ca ca.pem
  curl --cacert tls/ca.pem https://db1.example.internal:7001/v1/status`,
    )
    .action((flags: IssueFlags) => {
      if ((flags.node === undefined) === !flags.client) {
        process.stderr.write("synod tls issue: give --node ID or --client (one of them)\n");
        setExitCode(2);
        return;
      }
      try {
        const ca = openLocalCa(resolve(flags.dir));
        const files = flags.node === undefined ? ca.ensureClient() : flags.renew ? ca.issueNode(flags.node, flags.hosts) : ca.ensureNode(flags.node, flags.hosts);
        process.stdout.write(`certificate ${files.certFile}\nkey         ${files.keyFile}\nCA          ${files.caFile}\n`);
      } catch (error) {
        if (!(error instanceof TlsConfigError)) throw error;
        process.stderr.write(`synod tls issue: ${error.message}\n`);
        setExitCode(1);
      }
    });
}
