// `synod auth`, `synod user` and `synod role`: users, roles and permissions (docs/security.md).
// Each is one request to any node (it goes through the log there); with auth enabled, the
// caller passes an admin's credentials with --user name:password (or SYNOD_USER).
import { type Command, Option } from "commander";
import { callCluster, endpointsOption } from "./client-options.js";
import { UsageError } from "./usage-error.js";

type Opts = { endpoints: string[]; json: boolean };

function clusterCommand(parent: Command, name: string, description: string): Command {
  return parent.command(name).description(description).addOption(endpointsOption()).option("--json", "print the API's JSON answer", false);
}

const path = (kind: "users" | "roles", name: string, action = ""): string => `/v1/auth/${kind}/${encodeURIComponent(name)}${action}`;
const done = (line: string) => (): void => void process.stdout.write(`${line}\n`);

function passwordFrom(opts: { password?: string }): string {
  const password = opts.password ?? process.env["SYNOD_NEW_PASSWORD"];
  if (password === undefined || password === "") throw new UsageError("give the password with --password P (or in SYNOD_NEW_PASSWORD, to keep it out of the shell's history)");
  return password;
}

export function registerAuthCommands(program: Command, setExitCode: (code: number) => void): void {
  const auth = program.command("auth").description("turn authentication on or off, and get a token");
  clusterCommand(auth, "enable", "require credentials on every request (a user root holding the role root must exist)").action(async (opts: Opts) =>
    setExitCode(await callCluster("auth enable", opts, { method: "POST", path: "/v1/auth/enable" }, done("auth enabled: pass --user name:password (or SYNOD_USER) from now on"))),
  );
  clusterCommand(auth, "disable", "serve every request without credentials again").action(async (opts: Opts) =>
    setExitCode(await callCluster("auth disable", opts, { method: "POST", path: "/v1/auth/disable" }, done("auth disabled"))),
  );
  clusterCommand(auth, "status", "whether auth is enabled").action(async (opts: Opts) =>
    setExitCode(await callCluster("auth status", opts, { method: "GET", path: "/v1/auth/status" }, (body) => process.stdout.write(`auth is ${body["enabled"] === true ? "enabled" : "disabled"}\n`))),
  );
  clusterCommand(auth, "token", "print a token for --user, for Authorization: Bearer")
    .action(async (opts: Opts & { user?: string }) => {
      const user = opts.user ?? "";
      const colon = user.indexOf(":");
      if (colon <= 0) throw new UsageError("synod auth token needs --user name:password");
      setExitCode(await callCluster("auth token", opts, { method: "POST", path: "/v1/auth/authenticate", body: { name: user.slice(0, colon), password: user.slice(colon + 1) } }, (body) => process.stdout.write(`${String(body["token"])}\n`)));
    });

  const user = program.command("user").description("add, change and list users");
  clusterCommand(user, "add", "add a user, or set its password").argument("<name>").option("--password <password>", "its password (or SYNOD_NEW_PASSWORD)")
    .action(async (name: string, opts: Opts & { password?: string }) => setExitCode(await callCluster("user add", opts, { method: "PUT", path: path("users", name), body: { password: passwordFrom(opts) } }, done(`user ${name} saved`))));
  clusterCommand(user, "delete", "delete a user").argument("<name>")
    .action(async (name: string, opts: Opts) => setExitCode(await callCluster("user delete", opts, { method: "DELETE", path: path("users", name) }, done(`user ${name} deleted`))));
  clusterCommand(user, "grant", "give a user a role").argument("<name>").argument("<role>")
    .action(async (name: string, role: string, opts: Opts) => setExitCode(await callCluster("user grant", opts, { method: "POST", path: path("users", name, "/grant"), body: { role } }, done(`user ${name} holds role ${role}`))));
  clusterCommand(user, "revoke", "take a role from a user").argument("<name>").argument("<role>")
    .action(async (name: string, role: string, opts: Opts) => setExitCode(await callCluster("user revoke", opts, { method: "POST", path: path("users", name, "/revoke"), body: { role } }, done(`user ${name} no longer holds role ${role}`))));
  clusterCommand(user, "list", "list users and their roles").action(async (opts: Opts) =>
    setExitCode(await callCluster("user list", opts, { method: "GET", path: "/v1/auth/users" }, (body) => {
      for (const entry of body["users"] as { name: string; roles: string[] }[]) process.stdout.write(`${entry.name}\t${entry.roles.join(",")}\n`);
    })),
  );

  const role = program.command("role").description("add, change and list roles and their permissions");
  clusterCommand(role, "add", "add a role (with no permission)").argument("<name>")
    .action(async (name: string, opts: Opts) => setExitCode(await callCluster("role add", opts, { method: "PUT", path: path("roles", name) }, done(`role ${name} added`))));
  clusterCommand(role, "delete", "delete a role (its users lose it)").argument("<name>")
    .action(async (name: string, opts: Opts) => setExitCode(await callCluster("role delete", opts, { method: "DELETE", path: path("roles", name) }, done(`role ${name} deleted`))));
  clusterCommand(role, "grant", "give a role read and/or write on the keys under a prefix, or admin")
    .argument("<name>")
    .addOption(new Option("--prefix <prefix>", 'the keys starting with this ("" for every key)'))
    .option("--read", "read them", false)
    .option("--write", "write them", false)
    .option("--admin", "membership, compaction, leader transfer, backups and auth", false)
    .action(async (name: string, opts: Opts & { prefix?: string; read: boolean; write: boolean; admin: boolean }) => {
      if (opts.admin === (opts.prefix !== undefined)) throw new UsageError("give --prefix P with --read and/or --write, or --admin");
      if (!opts.admin && !opts.read && !opts.write) throw new UsageError("--prefix needs --read, --write or both");
      const body = opts.admin ? { admin: true } : { prefix: opts.prefix, read: opts.read, write: opts.write };
      setExitCode(await callCluster("role grant", opts, { method: "POST", path: path("roles", name, "/grant"), body }, done(`role ${name} updated`)));
    });
  clusterCommand(role, "revoke", "take a prefix's permission, or admin, from a role")
    .argument("<name>")
    .option("--prefix <prefix>", "the prefix whose permission goes")
    .option("--admin", "take admin", false)
    .action(async (name: string, opts: Opts & { prefix?: string; admin: boolean }) => {
      if (opts.admin === (opts.prefix !== undefined)) throw new UsageError("give --prefix P or --admin");
      setExitCode(await callCluster("role revoke", opts, { method: "POST", path: path("roles", name, "/revoke"), body: opts.admin ? { admin: true } : { prefix: opts.prefix } }, done(`role ${name} updated`)));
    });
  clusterCommand(role, "list", "list roles and their permissions").action(async (opts: Opts) =>
    setExitCode(await callCluster("role list", opts, { method: "GET", path: "/v1/auth/roles" }, (body) => {
      for (const entry of body["roles"] as { name: string; admin: boolean; permissions: { prefix: string; read: boolean; write: boolean }[] }[]) {
        const grants = entry.permissions.map((p) => `${JSON.stringify(p.prefix)}:${p.read ? "r" : ""}${p.write ? "w" : ""}`);
        process.stdout.write(`${entry.name}\t${[...(entry.admin ? ["admin"] : []), ...grants].join(" ")}\n`);
      }
    })),
  );
}
