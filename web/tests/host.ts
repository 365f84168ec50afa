// A real `orderpipe serve` for the suite: the binary cargo built (ORDERPIPE_BIN), on a free
// loopback port, in jwt mode (or none) against the Keycloak realm of `cargo xtask servers up`, on the
// real Kafka, Cassandra and Redis, with topics, group, key prefix and registry of its own.

import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";

export const KEYCLOAK = process.env.ORDERPIPE_TEST_KEYCLOAK_URL ?? "http://127.0.0.1:18080";
export const ISSUER = `${KEYCLOAK}/realms/orderpipe`;

export interface Host {
  url: string;
  log: string;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? done(address.port) : fail(new Error("no port"))));
    });
  });
}

const JWT_AUTH = `[auth]
mode = "jwt"
[auth.jwt]
issuer = "${ISSUER}"
audience = "orderpipe"
[auth.services.payments]
orders = ["payment_received"]
[auth.services.warehouse]
orders = ["shipped"]`;

const env = (name: string, fallback: string) => process.env[name] ?? fallback;

/** `jwt`: the Keycloak realm's tokens (the payments and warehouse clients may pay and ship);
 * `none`: the open host of local use, with the page's development sign-in. */
export type AuthMode = "jwt" | "none";

/** `streamLifetimeMs`: how long one stream stays open before the host ends it (and the page
 * reconnects with Last-Event-ID); the host's default is 30 minutes. */
export async function startHost(auth: AuthMode = "jwt", streamLifetimeMs = 1_800_000): Promise<Host> {
  const binary = process.env.ORDERPIPE_BIN;
  if (!binary) {
    throw new Error("ORDERPIPE_BIN must name the orderpipe binary (cargo xtask web test sets it)");
  }
  const port = await freePort();
  const suffix = randomBytes(5).toString("hex");
  const dir = resolve("test-results", `host-${suffix}`);
  mkdirSync(dir, { recursive: true });
  const config = join(dir, "orderpipe.toml");
  writeFileSync(
    config,
    `mode = "all"
[backends]
event_log = "kafka"
order_store = "cassandra"
status_cache = "redis"
[http]
addr = "127.0.0.1:${port}"
[stream]
max_lifetime_ms = ${streamLifetimeMs}
[kafka]
brokers = "${env("ORDERPIPE_KAFKA__BROKERS", "127.0.0.1:19092")}"
topic = "orders-web-test-${suffix}"
dead_letter_topic = "orders-web-test-${suffix}.dead-letter"
group_id = "orderpipe-web-test-${suffix}"
[cassandra]
nodes = "${env("ORDERPIPE_CASSANDRA__NODES", "127.0.0.1:19042")}"
keyspace = "orderpipe_test"
[redis]
url = "${env("ORDERPIPE_REDIS__URL", "redis://127.0.0.1:16379")}"
key_prefix = "orderpipe-web-test-${suffix}"
[plugins]
dir = "${env("ORDERPIPE_PLUGINS__DIR", resolve("../plugins/dist"))}"
order = "order"
registry_scope = "web-test-${suffix}"
${auth === "jwt" ? JWT_AUTH : ""}
[log]
filter = "info"
`,
  );
  const log = join(dir, "host.log");
  const output = createWriteStream(log);
  // The file says everything: the servers' ORDERPIPE_* variables must not override it.
  const childEnv = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith("ORDERPIPE_")),
  );
  const child: ChildProcess = spawn(binary, ["--config", config, "serve"], {
    env: childEnv,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.pipe(output);
  child.stderr?.pipe(output);
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`the host exited with ${child.exitCode} while starting; see ${log}`);
    }
    const ready = await fetch(`${url}/readyz`).then((r) => r.ok, () => false);
    if (ready) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`the host was not ready within 120 s; see ${log}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    url,
    log,
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        const stopped = await Promise.race([exited, new Promise((r) => setTimeout(() => r("late"), 30_000))]);
        if (stopped === "late") child.kill("SIGKILL");
      }
    },
  };
}

/** An access token from Keycloak's token endpoint (client credentials). */
export async function serviceToken(client: string, secret: string): Promise<string> {
  const response = await fetch(`${ISSUER}/protocol/openid-connect/token`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "client_credentials", client_id: client, client_secret: secret }),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(`Keycloak refused ${client}: ${JSON.stringify(body)}`);
  return body.access_token as string;
}
