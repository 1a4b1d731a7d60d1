/**
 * The real registry for tests: Debian's `docker-registry` (CNCF Distribution 2.8.2) on
 * 127.0.0.1 with a free port, a temporary storage folder, `http.secret` set (so upload
 * sessions survive a restart) and deletes enabled, in one of three modes:
 * - "none": open;
 * - "htpasswd": Basic auth, bcrypt entries made by `htpasswd -Bbn` (apache2-utils);
 * - "token": the Bearer token flow, with a small Node token server that signs ES256 JWTs
 *   whose `x5c` leaf chains to the CA in the registry's `auth.token.rootcertbundle`
 *   (claims as registry/auth/token/token.go checks them: iss, aud, exp, nbf, iat, jti, access).
 * Optionally TLS, with a server certificate for 127.0.0.1 from the same test CA.
 *
 * Every request the registry served is parsed from its access log (stdout), so tests count
 * requests from the registry's side. `restart()` keeps the port, config and storage;
 * `kill()` is SIGKILL (a crash mid-request).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash, createPrivateKey, randomBytes, sign, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, createWriteStream } from "node:fs";
import { createServer, type Server } from "node:http";
import { connect, createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

export type RegistryAuthMode = "none" | "htpasswd" | "token";

export interface StartRegistryOptions {
  auth?: RegistryAuthMode;
  /** user -> password (htpasswd and token modes). */
  users?: Record<string, string>;
  /** Serve HTTPS with a certificate from the test CA (`caFile`). */
  tls?: boolean;
  /** Token mode: identity (refresh) tokens the token server accepts, token -> user. */
  refreshTokens?: Record<string, string>;
  /** Run as a pull-through cache of this registry URL (Distribution's `proxy.remoteurl`). */
  proxyRemoteUrl?: string;
}

export interface AccessLogEntry {
  method: string;
  path: string;
  status: number;
}

export interface TokenRequest {
  method: string;
  scopes: string[];
  account: string | undefined;
  /** The user the credentials proved, undefined for anonymous. */
  user: string | undefined;
  status: number;
}

export interface TestRegistry {
  /** `127.0.0.1:<port>`. */
  host: string;
  port: number;
  url: string;
  storageDir: string;
  /** PEM of the test CA (TLS and token modes). */
  caPem: string | undefined;
  tokenRequests: TokenRequest[];
  /**
   * Requests the registry served since the last clear (all runs). The registry logs a request
   * after answering it, so this waits until the log has been quiet for a moment.
   */
  accessLog(): Promise<AccessLogEntry[]>;
  /** Waits for the log to settle (late lines of earlier requests), then forgets it and the token requests. */
  clearAccessLog(): Promise<void>;
  /** Where the registry keeps a blob's bytes. */
  blobDataPath(digest: string): string;
  stop(): Promise<void>;
  kill(): Promise<void>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createNetServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

interface TestPki {
  caPem: string;
  caFile: string;
  signerKeyPem: string;
  signerDer: Buffer;
  serverCertFile: string;
  serverKeyFile: string;
}

/** A throwaway CA (P-256), a JWT signing leaf and a TLS server certificate for 127.0.0.1, made with openssl. */
function makePki(dir: string): TestPki {
  const path = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
  writeFileSync(path("leaf.ext"), "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n");
  writeFileSync(path("server.ext"), "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n");
  openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", path("ca.key"));
  openssl("req", "-x509", "-new", "-key", path("ca.key"), "-subj", "/CN=ai-tools test CA", "-days", "2", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", path("ca.crt"));
  for (const name of ["signer", "server"]) {
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", path(`${name}.key`));
    openssl("req", "-new", "-key", path(`${name}.key`), "-subj", `/CN=ai-tools test ${name}`, "-out", path(`${name}.csr`));
    openssl("x509", "-req", "-in", path(`${name}.csr`), "-CA", path("ca.crt"), "-CAkey", path("ca.key"), "-CAcreateserial", "-days", "2", "-extfile", path(name === "signer" ? "leaf.ext" : "server.ext"), "-out", path(`${name}.crt`));
  }
  return {
    caPem: readFileSync(path("ca.crt"), "utf8"),
    caFile: path("ca.crt"),
    signerKeyPem: readFileSync(path("signer.key"), "utf8"),
    signerDer: Buffer.from(new X509Certificate(readFileSync(path("signer.crt"))).raw),
    serverCertFile: path("server.crt"),
    serverKeyFile: path("server.key"),
  };
}

const base64url = (data: Buffer | string) => Buffer.from(data).toString("base64url");

/** The token server: GET /token (Basic or anonymous) and the OAuth2 POST with a refresh token. */
async function startTokenServer(options: {
  pki: TestPki;
  service: string;
  issuer: string;
  users: Record<string, string>;
  refreshTokens: Record<string, string>;
  log: TokenRequest[];
}): Promise<{ server: Server; realm: string }> {
  const key = createPrivateKey(options.pki.signerKeyPem);
  const issue = (user: string | undefined, scopes: string[]) => {
    const now = Math.floor(Date.now() / 1000);
    // Anonymous callers get a token without access (as Docker Hub does for private repositories).
    const access = user
      ? scopes.flatMap((scope) => {
          const match = /^(repository|registry):(.+):([^:]+)$/.exec(scope);
          return match ? [{ type: match[1], name: match[2], actions: match[3]!.split(",") }] : [];
        })
      : [];
    const header = { typ: "JWT", alg: "ES256", x5c: [options.pki.signerDer.toString("base64")] };
    const claims = { iss: options.issuer, sub: user ?? "", aud: options.service, exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString("hex"), access };
    const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
    const signature = sign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" });
    return `${input}.${base64url(signature)}`;
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://token");
      let user: string | undefined;
      let refused = false;
      let scopes: string[];
      if (req.method === "POST") {
        const form = new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
        scopes = (form.get("scope") ?? "").split(" ").filter(Boolean);
        user = form.get("grant_type") === "refresh_token" ? options.refreshTokens[form.get("refresh_token") ?? ""] : undefined;
        refused = user === undefined;
      } else {
        scopes = url.searchParams.getAll("scope");
        const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? "");
        if (basic) {
          const decoded = Buffer.from(basic[1]!, "base64").toString("utf8");
          const name = decoded.slice(0, decoded.indexOf(":"));
          const password = decoded.slice(decoded.indexOf(":") + 1);
          if (options.users[name] !== undefined && options.users[name] === password) user = name;
          else refused = true;
        }
      }
      const status = refused ? 401 : 200;
      options.log.push({ method: req.method ?? "", scopes, account: url.searchParams.get("account") ?? undefined, user, status });
      res.writeHead(status, { "content-type": "application/json" });
      if (refused) {
        res.end(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "authentication required" }] }));
        return;
      }
      const token = issue(user, scopes);
      res.end(JSON.stringify(req.method === "POST" ? { access_token: token, expires_in: 300 } : { token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() }));
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return { server, realm: `http://127.0.0.1:${port}/token` };
}

export async function startRegistry(options: StartRegistryOptions = {}): Promise<TestRegistry> {
  const auth = options.auth ?? "none";
  const users = options.users ?? {};
  const dir = mkdtempSync(join(tmpdir(), "ai-tools-registry-"));
  const storageDir = join(dir, "storage");
  mkdirSync(storageDir);
  const port = await freePort();
  const pki = auth === "token" || options.tls ? makePki(dir) : undefined;
  const tokenRequests: TokenRequest[] = [];
  let tokenServer: Server | undefined;

  const lines = ["version: 0.1", "log:", "  level: warn", "  formatter: text", "storage:", "  filesystem:", `    rootdirectory: ${storageDir}`, "  delete:", "    enabled: true", "http:", `  addr: 127.0.0.1:${port}`, `  secret: ${randomBytes(16).toString("hex")}`];
  if (options.tls && pki) lines.push("  tls:", `    certificate: ${pki.serverCertFile}`, `    key: ${pki.serverKeyFile}`);
  if (auth === "htpasswd") {
    const entries = Object.entries(users).map(([user, password]) => execFileSync("htpasswd", ["-Bbn", user, password], { encoding: "utf8" }).trim());
    writeFileSync(join(dir, "htpasswd"), `${entries.join("\n")}\n`);
    lines.push("auth:", "  htpasswd:", "    realm: ai-tools-test", `    path: ${join(dir, "htpasswd")}`);
  }
  if (auth === "token" && pki) {
    const started = await startTokenServer({ pki, service: "ai-tools-test-registry", issuer: "ai-tools-test-issuer", users, refreshTokens: options.refreshTokens ?? {}, log: tokenRequests });
    tokenServer = started.server;
    lines.push("auth:", "  token:", `    realm: ${started.realm}`, "    service: ai-tools-test-registry", "    issuer: ai-tools-test-issuer", `    rootcertbundle: ${pki.caFile}`);
  }
  if (options.proxyRemoteUrl) lines.push("proxy:", `  remoteurl: ${options.proxyRemoteUrl}`);
  const configFile = join(dir, "config.yml");
  writeFileSync(configFile, `${lines.join("\n")}\n`);

  const scheme = options.tls ? "https" : "http";
  const log: AccessLogEntry[] = [];
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const launch = async () => {
    const stderr = createWriteStream(join(dir, "registry.log"), { flags: "a" });
    const proc = spawn("docker-registry", ["serve", configFile], { stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    proc.stderr.pipe(stderr);
    // Access log: 127.0.0.1 - - [date] "GET /v2/ HTTP/1.1" 200 2 "" "agent"
    createInterface({ input: proc.stdout }).on("line", (line) => {
      const match = /"([A-Z]+) (\S+) HTTP\/[\d.]+" (\d{3}) /.exec(line);
      if (match) log.push({ method: match[1]!, path: match[2]!, status: Number(match[3]) });
    });
    exited = new Promise((resolve) => proc.once("exit", () => resolve()));
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`docker-registry exited at start (code ${proc.exitCode}); see ${join(dir, "registry.log")}`);
      const up = await acceptsConnections(port);
      if (up) break;
      if (Date.now() > deadline) throw new Error("docker-registry did not start listening");
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  await launch();

  const quiet = async () => {
    for (let seen = -1; seen !== log.length; ) {
      seen = log.length;
      await new Promise((r) => setTimeout(r, 80));
    }
  };
  const halt = async (signal: NodeJS.Signals) => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      await exited;
    }
  };

  return {
    host: `127.0.0.1:${port}`,
    port,
    url: `${scheme}://127.0.0.1:${port}`,
    storageDir,
    caPem: pki?.caPem,
    tokenRequests,
    accessLog: async () => {
      await quiet();
      return [...log];
    },
    clearAccessLog: async () => {
      await quiet();
      log.length = 0;
      tokenRequests.length = 0;
    },
    blobDataPath: (digest) => {
      const hex = digest.replace(/^sha256:/, "");
      return join(storageDir, "docker", "registry", "v2", "blobs", "sha256", hex.slice(0, 2), hex, "data");
    },
    stop: () => halt("SIGTERM"),
    kill: () => halt("SIGKILL"),
    restart: async () => {
      await halt("SIGTERM");
      await launch();
    },
    close: async () => {
      await halt("SIGTERM");
      await new Promise<void>((resolve) => (tokenServer ? tokenServer.close(() => resolve()) : resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Whether something accepts TCP connections on the port (the registry is up). */
function acceptsConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** sha256 digest string of bytes. */
export function digestOf(bytes: Buffer | string): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}
