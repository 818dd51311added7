// Browser end-to-end test of jeex-api's event streams: starts PostgreSQL database, Redis, the
// server and a static page server, drives headless Chromium (Debian's, through playwright-core)
// through three phases and fails unless every event reached the page in order, once.
//
//   (a) stream expiry      JEEX_SSE_MAX_LIFETIME=5s ends every stream; EventSource resumes
//   (b) server restart     SIGTERM, then a new server on the same port with the same env
//   (c) Redis lost         the test's Redis is killed and restarted empty; the page must get
//                          every event, or `reset` and then the current state
//
// Run through run.sh (it installs, generates the client types and compiles the page first).

import { spawn, execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const env = process.env;
const targetDir = env.CARGO_TARGET_DIR || path.join(os.homedir(), ".cache", "jeex-target");
const cfg = {
  bin: env.JEEX_API_BIN || path.join(targetDir, "debug", "jeex-api"),
  chromium: env.CHROMIUM_PATH || "/usr/bin/chromium",
  redisServer: env.REDIS_SERVER || "redis-server",
  pg: { host: env.PGHOST || "127.0.0.1", port: env.PGPORT || "5432", user: env.PGUSER || "postgres" },
  documents: Number(env.BROWSER_E2E_DOCUMENTS || 3000),
  // Small batches: more progress events, and an import long enough (several seconds) that its
  // streams cross a 5 s expiry while it runs.
  batch: env.BROWSER_E2E_BATCH_SIZE || "3",
  // How long phase (b) leaves the port closed between the old server's exit and the new one.
  downMs: 2_500,
  phases: (env.BROWSER_E2E_PHASES || "a,b,c").split(",").map((p) => p.trim()).filter(Boolean),
  // The whole browser phase must stay under two minutes.
  budgetMs: 120_000,
  logs: path.join(here, "build", "logs"),
};

// Imports of twice the documents, for phases whose point needs an import still streaming after
// something else has happened (a stream's 5 s expiry; Redis's return plus a stream's 2 s retry).
// One import of the default size took 4.6-5.2 s once a scope's transaction began in one round
// trip (issue 27): ended first, its stream rightly gets only the final state, and the phase
// would prove nothing.
const longImport = cfg.documents * 2;

const t0 = Date.now();
const stamp = () => `${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s`;
const say = (line) => console.log(`[browser-e2e ${stamp()}] ${line}`);
const PHASES = ["a", "b", "c", "d"];
// The phase a failure belongs to (checks made at the end name theirs).
const current = { phase: "setup", quiet: false, ran: new Set() };
const failures = [];
const fail = (text, phase = current.phase) => {
  failures.push({ phase, text });
  if (!current.quiet) say(`FAIL (${phase}): ${text}`);
};

// ---------------------------------------------------------------- processes ----------------

const children = new Set();

function start(name, cmd, args, options = {}) {
  const logFile = path.join(cfg.logs, `${name}.log`);
  const out = fs.openSync(logFile, "a");
  const child = spawn(cmd, args, { env: options.env ?? env, stdio: ["ignore", out, out] });
  fs.closeSync(out);
  child.logFile = logFile;
  child.label = name;
  child.exited = new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      children.delete(child);
      child.exitStatus = { code, signal };
      resolve({ code, signal });
    });
    child.on("error", (e) => {
      children.delete(child);
      child.exitStatus = { code: null, signal: null, error: String(e) };
      resolve(child.exitStatus);
    });
  });
  children.add(child);
  return child;
}

async function stop(child, signal = "SIGTERM", graceMs = 10_000) {
  if (!child || child.exitStatus) return child?.exitStatus;
  child.kill(signal);
  const done = await Promise.race([child.exited, sleep(graceMs).then(() => null)]);
  if (done) return done;
  say(`${child.label} did not exit within ${graceMs} ms of ${signal}; SIGKILL`);
  child.kill("SIGKILL");
  return await Promise.race([child.exited, sleep(5_000).then(() => ({ code: null, signal: "stuck" }))]);
}

async function waitFor(what, timeoutMs, probe, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last = null;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await sleep(intervalMs);
  }
  throw new Error(`${what}: not ready within ${timeoutMs} ms${last ? ` (${last.message ?? last})` : ""}`);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function run(cmd, args, options = {}) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 30_000, ...options }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(" ")}: ${err.message}\n${stdout}${stderr}`));
      else resolve(stdout);
    });
  });
}

function psql(sql) {
  const { host, port, user } = cfg.pg;
  return run("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", port, "-U", user, "-d", "postgres", "-c", sql]);
}

function redisPing(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, "127.0.0.1");
    const timer = setTimeout(() => (sock.destroy(), resolve(false)), 1000);
    sock.on("connect", () => sock.write("PING\r\n"));
    sock.on("data", (d) => (clearTimeout(timer), sock.destroy(), resolve(d.toString().startsWith("+PONG"))));
    sock.on("error", () => (clearTimeout(timer), resolve(false)));
  });
}

async function httpStatus(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  await res.arrayBuffer();
  return res.status;
}

// ---------------------------------------------------------------- static page server ---------

const routes = {
  "/": [path.join(here, "src", "page.html"), "text/html; charset=utf-8"],
  "/page.js": [path.join(here, "build", "js", "page.js"), "text/javascript; charset=utf-8"],
  "/vendor/openapi-fetch.mjs": [path.join(here, "node_modules", "openapi-fetch", "dist", "index.mjs"), "text/javascript; charset=utf-8"],
};

function pageServer() {
  const server = http.createServer((req, res) => {
    const route = routes[new URL(req.url ?? "/", "http://x").pathname];
    if (req.method !== "GET" || !route) {
      res.writeHead(req.url === "/favicon.ico" ? 204 : 404).end();
      return;
    }
    fs.readFile(route[0], (err, body) => {
      if (err) res.writeHead(500).end(String(err));
      else res.writeHead(200, { "content-type": route[1], "cache-control": "no-store" }).end(body);
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

// ---------------------------------------------------------------- the run -------------------

const state = { db: null, dataDir: null, redis: null, servers: [], browser: null, pages: null };

function serverEnv(ports, dbUrl) {
  const base = {};
  // Only what the server needs from the caller's environment: no stray JEEX_*, REDIS_URL,
  // QDRANT_URL or OTEL_* may change what is tested.
  for (const k of ["PATH", "HOME", "LANG", "TMPDIR"]) if (env[k]) base[k] = env[k];
  return {
    ...base,
    JEEX_ENV: "development",
    DATABASE_URL: dbUrl,
    JEEX_MIGRATE_DATABASE_URL: dbUrl,
    REDIS_URL: `redis://127.0.0.1:${ports.redis}`,
    JEEX_HTTP_ADDR: `127.0.0.1:${ports.api}`,
    JEEX_CORS_ORIGINS: `http://127.0.0.1:${ports.page}`,
    JEEX_SSE_MAX_LIFETIME: "5s",
    JEEX_IMPORT_BATCH_SIZE: cfg.batch,
    JEEX_DATA_DIR: state.dataDir,
    JEEX_LOG_FORMAT: "json",
    RUST_LOG: "info",
  };
}

function startRedis(port, n) {
  return start(`redis-${n}`, cfg.redisServer, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"]);
}

async function startServer(envVars, port, n) {
  const server = start(`server-${n}`, cfg.bin, ["serve"], { env: envVars });
  state.servers.push(server);
  const began = Date.now();
  await waitFor(`jeex-api serve #${n}`, 30_000, async () => {
    if (server.exitStatus) throw new Error(`exited ${JSON.stringify(server.exitStatus)}; see ${server.logFile}`);
    return (await httpStatus(`http://127.0.0.1:${port}/health/live`)) === 200;
  });
  return { server, ms: Date.now() - began };
}

async function main() {
  const unknown = cfg.phases.filter((p) => !PHASES.includes(p));
  if (unknown.length || cfg.phases.length === 0) throw new Error(`BROWSER_E2E_PHASES: ${unknown.join(",") || "(empty)"} (phases: ${PHASES.join(", ")})`);
  fs.rmSync(cfg.logs, { recursive: true, force: true });
  fs.mkdirSync(cfg.logs, { recursive: true });
  for (const [file, what] of [[cfg.bin, "JEEX_API_BIN"], [cfg.chromium, "CHROMIUM_PATH"], [routes["/page.js"][0], "the compiled page (run.sh compiles it)"]]) {
    if (!fs.existsSync(file)) throw new Error(`${file} not found (${what})`);
  }

  state.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "jeex-browser-e2e-"));
  state.db = `jeex_t_${randomBytes(16).toString("hex")}`;
  await psql(`CREATE DATABASE ${state.db}`);
  const dbUrl = `postgres://${cfg.pg.user}@${cfg.pg.host}:${cfg.pg.port}/${state.db}`;
  const migrateEnv = { PATH: env.PATH, HOME: env.HOME, JEEX_ENV: "development", DATABASE_URL: dbUrl, JEEX_MIGRATE_DATABASE_URL: dbUrl, JEEX_DATA_DIR: state.dataDir };
  await run(cfg.bin, ["migrate"], { env: migrateEnv });
  say(`database ${state.db} migrated`);

  state.pages = await pageServer();
  const ports = { page: state.pages.address().port, api: await freePort(), redis: 0 };
  do ports.redis = await freePort();
  while (ports.redis === ports.api);
  state.redis = startRedis(ports.redis, 1);
  await waitFor("redis-server", 10_000, () => redisPing(ports.redis));
  const envVars = serverEnv(ports, dbUrl);
  const { ms: bootMs } = await startServer(envVars, ports.api, 1);
  say(`redis on ${ports.redis}, jeex-api on ${ports.api} (ready in ${bootMs} ms), page on ${ports.page}; ${cfg.documents} documents per import, batch ${cfg.batch}`);

  // ------------------------------------------------------------ browser ----------------------
  const browserStart = Date.now();
  state.browser = await chromium.launch({
    executablePath: cfg.chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    timeout: 30_000,
  });
  const page = await state.browser.newPage();
  page.setDefaultTimeout(45_000);
  const consoleLog = fs.createWriteStream(path.join(cfg.logs, "page-console.log"));
  page.on("console", (m) => consoleLog.write(`${m.type()} ${m.text()}\n`));
  page.on("pageerror", (e) => fail(`page error: ${e.message}`));

  // Every request the browser makes for an event stream: the reconnects must repeat the URL
  // and carry Last-Event-ID.
  const streamRequests = [];
  page.on("request", (req) => {
    if (!/\/events\?/.test(req.url())) return;
    const entry = { url: req.url(), phase: current.phase, lastEventId: null, status: null, failed: null };
    streamRequests.push(entry);
    req.allHeaders().then((h) => (entry.lastEventId = h["last-event-id"] ?? null), () => {});
  });
  page.on("response", (res) => {
    const e = streamRequests.findLast((r) => r.url === res.url() && r.status === null && r.failed === null);
    if (e) e.status = res.status();
  });
  page.on("requestfailed", (req) => {
    const e = streamRequests.findLast((r) => r.url === req.url() && r.status === null && r.failed === null);
    if (e) e.failed = req.failure()?.errorText ?? "failed";
  });

  await page.goto(`http://127.0.0.1:${ports.page}/`);
  await page.waitForFunction(() => window.e2e !== undefined, null, { timeout: 15_000 });
  const who = await page.evaluate((o) => window.e2e.init(o), { api: `http://127.0.0.1:${ports.api}`, email: `browser-e2e-${randomBytes(4).toString("hex")}@example.com` });
  say(`page signed in; project ${who.project}`);
  const projectUrl = streamRequests[0]?.url;

  const setPhase = async (p) => {
    current.phase = p;
    await page.evaluate((x) => window.e2e.setPhase(x), p);
  };
  const startImport = async (documents = cfg.documents) => {
    const r = await page.evaluate((n) => window.e2e.startImport(n), documents);
    return r;
  };
  const waitOp = (op, ms) => page.evaluate(([o, t]) => window.e2e.waitOperation(o, t), [op, ms]);
  const streamState = () => page.evaluate(() => window.e2e.projectStreamState());
  const phaseInfo = {};

  async function phaseRun(name, title, body) {
    if (!cfg.phases.includes(name)) return;
    await setPhase(name);
    current.ran.add(name);
    const began = Date.now();
    const info = { title, imports: [], notes: [] };
    phaseInfo[name] = info;
    say(`phase ${name}: ${title}`);
    try {
      await body(info);
    } catch (e) {
      fail(`phase ${name} (${title}): ${e.message}`);
    }
    info.ms = Date.now() - began;
  }

  const importAndFollow = async (info, timeoutMs, documents = cfg.documents) => {
    const { operation, postMs, status } = await startImport(documents);
    const r = await waitOp(operation, timeoutMs);
    info.imports.push({ operation, postMs, status, ms: r.ms, end: r.status });
    return r;
  };

  // Reconnects of the project stream and of operation streams while an import they follow
  // was still streaming into them.
  const midImportReconnects = async (name) => {
    const r = await page.evaluate(() => window.e2e.report());
    const count = (kind) => r.streams.filter((st) => st.kind === kind).reduce((n, st) => n + (st.midImportReconnectsByPhase[name] ?? 0), 0);
    return { project: count("project"), operation: count("operation") };
  };

  await phaseRun("a", "stream expiry (JEEX_SSE_MAX_LIFETIME=5s)", async (info) => {
    const before = await streamState();
    const began = Date.now();
    // The point is streams that expire while an import streams into them.
    await importAndFollow(info, 30_000, longImport);
    // Across at least one more expiry of the project stream before the next import.
    const wait = 6_500 - (Date.now() - began);
    if (wait > 0) await sleep(wait);
    await importAndFollow(info, 30_000, longImport);
    // Should imports be quicker still, a few more (bounded) make sure of it.
    let mid = await midImportReconnects("a");
    for (let extra = 0; extra < 3 && (mid.project === 0 || mid.operation === 0) && Date.now() - began < 45_000; extra++) {
      await importAndFollow(info, 30_000, longImport);
      mid = await midImportReconnects("a");
    }
    info.notes.push(`reconnects while an import was streaming: project stream ${mid.project}, operation streams ${mid.operation}`);
    if (mid.project === 0) fail("phase a: the project stream never expired while an import was streaming (imports too quick? lower BROWSER_E2E_BATCH_SIZE)");
    if (mid.operation === 0) fail("phase a: no operation stream expired while its import was streaming (imports too quick? lower BROWSER_E2E_BATCH_SIZE)");
    const after = await streamState();
    if (after.opens - before.opens < 1) fail("phase a: the project stream never reconnected: no stream expiry was crossed");
    if (after.readyState === 2) fail("phase a: project stream CLOSED");
  });

  await phaseRun("b", "restart of the server the browser is connected to", async (info) => {
    const before = await streamState();
    const old = state.servers[state.servers.length - 1];
    const stopBegan = Date.now();
    const exit = await stop(old, "SIGTERM", 25_000);
    info.notes.push(`old server exited ${exit?.code ?? exit?.signal} ${Date.now() - stopBegan} ms after SIGTERM`);
    if (exit?.code !== 0) fail(`phase b: the old server exited ${JSON.stringify(exit)} after SIGTERM (expected 0)`);
    // Down long enough that EventSource's reconnects (retry: 1000) are refused and retried.
    const failedBefore = streamRequests.filter((r) => r.failed !== null && r.url === projectUrl).length;
    await sleep(cfg.downMs);
    const mid = await streamState();
    if (mid.readyState !== 0) fail(`phase b: project stream readyState ${mid.readyState} while the server was down (expected 0, CONNECTING)`);
    const { ms } = await startServer(envVars, ports.api, state.servers.length + 1);
    const refused = streamRequests.filter((r) => r.failed !== null && r.url === projectUrl).length - failedBefore;
    info.notes.push(`server down ${cfg.downMs} ms: ${refused} refused reconnect(s) of the project stream, readyState ${mid.readyState}; new server ready in ${ms} ms`);
    if (refused < 1) fail("phase b: the project stream made no reconnect attempt while the server was down");
    await importAndFollow(info, 30_000);
    const after = await streamState();
    if (after.opens - before.opens < 1) fail("phase b: the project stream did not reconnect to the new server");
    if (after.readyState === 2) fail("phase b: project stream CLOSED");
  });

  await phaseRun("c", "Redis stopped and restarted empty", async (info) => {
    await stop(state.redis, "SIGKILL", 5_000);
    info.notes.push("redis killed (SIGKILL)");
    // Outlasting Redis's return plus a stream's retry (an ended operation, asked for without a
    // resume point, rightly gives only its final state).
    const { operation, postMs, status } = await startImport(longImport);
    info.notes.push(`import started while Redis was down: HTTP ${status} in ${postMs} ms`);
    await sleep(2_500);
    const mid = await page.evaluate((o) => window.e2e.fetchOperation(o), operation);
    info.notes.push(`2.5 s later: operation ${mid.operation?.status ?? `HTTP ${mid.status}`} at ${mid.operation?.progress ?? "?"}%`);
    state.redis = startRedis(ports.redis, 2);
    await waitFor("redis-server (restarted)", 10_000, () => redisPing(ports.redis));
    info.notes.push("redis restarted empty");
    try {
      const r = await waitOp(operation, 35_000);
      info.imports.push({ operation, postMs, status, ms: r.ms, end: r.status });
    } catch (e) {
      info.imports.push({ operation, postMs, status, ms: null, end: "not followed to its end" });
      throw e;
    }
    const after = await streamState();
    if (after.readyState === 2) fail("phase c: project stream CLOSED");
  });

  // Not in the default run (BROWSER_E2E_PHASES=a,b,c,d adds it): the server restarted while an
  // import is running, so the new server resumes it.
  await phaseRun("d", "restart of the server during an import", async (info) => {
    const { operation, postMs, status } = await startImport();
    await waitFor("import at 30%", 20_000, async () => ((await page.evaluate((o) => window.e2e.fetchOperation(o), operation)).operation?.progress ?? 0) >= 30, 100);
    const old = state.servers[state.servers.length - 1];
    const exit = await stop(old, "SIGTERM", 25_000);
    info.notes.push(`old server exited ${exit?.code ?? exit?.signal} at 30%+ of the import`);
    await sleep(1_000);
    const { ms } = await startServer(envVars, ports.api, state.servers.length + 1);
    info.notes.push(`new server ready in ${ms} ms`);
    const r = await waitOp(operation, 30_000);
    info.imports.push({ operation, postMs, status, ms: r.ms, end: r.status });
  });

  // ------------------------------------------------------------ verdict ----------------------
  current.phase = "end";
  current.quiet = true; // listed once, in the verdict
  const behind = await page.evaluate((ms) => window.e2e.settle(ms), 5_000);
  const report = await page.evaluate(() => window.e2e.report());
  if (behind > 0) report.notes.push(`${behind} operation(s) without their end on the project stream 5 s after the last phase`);
  for (const f of report.failures) fail(f.text, f.phase);

  // Every reconnect repeats its stream's URL (EventSource does) and, once the stream has
  // delivered an event, sends the last id it delivered as Last-Event-ID. The answered requests
  // of a URL pair up, in order, with the page's connections of that stream.
  for (const s of report.streams) {
    const reqs = streamRequests.filter((r) => r.url === s.url);
    const answered = reqs.filter((r) => r.status !== null);
    s.reconnectRequests = reqs.length - 1;
    s.refused = reqs.filter((r) => r.failed !== null).length;
    s.badStatus = answered.filter((r) => r.status !== 200).map((r) => `${r.status}@${r.phase}`);
    if (s.badStatus.length) fail(`${s.name}: stream requests answered ${s.badStatus.join(", ")}`, answered.find((r) => r.status !== 200)?.phase);
    s.withLastEventId = answered.filter((r) => r.lastEventId !== null).length;
    if (answered.length !== s.connections.length && s.badStatus.length === 0) {
      fail(`${s.name}: ${answered.length} answered requests but ${s.connections.length} connections opened`);
      continue;
    }
    s.connections.forEach((c, i) => {
      const sent = answered[i]?.lastEventId ?? null;
      if (sent !== c.lastId) fail(`${s.name}: connection ${i + 1} sent Last-Event-ID ${sent ?? "(none)"}, but the last id received was ${c.lastId ?? "(none)"}`, c.phase);
    });
  }
  const ps = report.streams.find((s) => s.kind === "project");
  fs.writeFileSync(path.join(cfg.logs, "report.json"), JSON.stringify({ report, streamRequests, phaseInfo }, null, 1));
  const browserMs = Date.now() - browserStart;
  if (browserMs > cfg.budgetMs) fail(`the browser phase took ${(browserMs / 1000).toFixed(1)} s (limit ${cfg.budgetMs / 1000} s)`, "budget");

  // ------------------------------------------------------------ summary ----------------------
  say("summary");
  const sum = (rec, p) => rec?.[p] ?? 0;
  for (const [name, info] of Object.entries(phaseInfo)) {
    const opStreams = report.streams.filter((s) => s.kind === "operation");
    const evP = sum(ps?.eventsByPhase, name);
    const evO = opStreams.reduce((n, s) => n + sum(s.eventsByPhase, name), 0);
    const recP = sum(ps?.reconnectsByPhase, name);
    const recO = opStreams.reduce((n, s) => n + sum(s.reconnectsByPhase, name), 0);
    const resets = report.streams.reduce((n, s) => n + sum(s.resetsByPhase, name), 0);
    const refused = streamRequests.filter((r) => r.phase === name && r.failed !== null).length;
    const imports = info.imports.map((i) => `${i.ms === null ? "?" : (i.ms / 1000).toFixed(1)}s→${i.end.replace("operation.", "")} (POST ${i.postMs} ms)`).join(", ");
    console.log(
      `  phase ${name} ${info.title}: ${(info.ms / 1000).toFixed(1)} s; imports ${imports || "none"}; events project ${evP}, operation streams ${evO}; ` +
        `reconnects project ${recP}, operation streams ${recO}; failed connects ${refused}; resets ${resets}`,
    );
    for (const n of info.notes) console.log(`      ${n}`);
  }
  for (const o of report.ops) {
    console.log(`  op ${o.id.slice(-12)} (${o.phase}): project [${o.projectSequence}] operation [${o.operationSequence}]${o.refreshes.length ? ` after reset: ${o.refreshes.map((r) => `GET ${r.first}${r.endedBy === "event" ? ", then its events" : `→${r.last}`}`).join("; ")}` : ""}`);
  }
  if (ps) console.log(`  project stream: ${ps.events} events, ${ps.opens} connections (${ps.withLastEventId} with Last-Event-ID), ${ps.refused} refused attempts, readyState ${ps.readyState}`);
  for (const n of report.notes) console.log(`  note: ${n}`);
  console.log(`  browser phase ${(browserMs / 1000).toFixed(1)} s; total ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

function serverLogDigest() {
  const lines = [];
  for (const file of fs.existsSync(cfg.logs) ? fs.readdirSync(cfg.logs) : []) {
    if (!file.startsWith("server-")) continue;
    const counts = new Map();
    for (const line of fs.readFileSync(path.join(cfg.logs, file), "utf8").split("\n")) {
      // Stream tickets travel in URLs: neither they nor any other signed token may reach a log.
      if (/eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/.test(line)) fail(`${file}: a signed token (a stream ticket?) reached the server log: ${line.slice(0, 120)}`);
      let j;
      try {
        j = JSON.parse(line);
      } catch {
        if (/panicked/.test(line)) fail(`${file}: ${line.slice(0, 300)}`);
        continue;
      }
      if (j.level !== "WARN" && j.level !== "ERROR") continue;
      const key = `${j.level} ${j.message}${j.event ? ` (${j.event})` : ""}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    for (const [k, n] of counts) if (!/superuser and has BYPASSRLS/.test(k)) lines.push(`  ${file}: ${n}× ${k}`.slice(0, 220));
  }
  return lines;
}

async function cleanup() {
  const quietly = async (what, fn) => {
    try {
      await Promise.race([fn(), sleep(10_000).then(() => say(`cleanup: ${what} timed out`))]);
    } catch (e) {
      say(`cleanup: ${what}: ${e.message ?? e}`);
    }
  };
  if (state.browser) await quietly("browser", () => state.browser.close());
  for (const s of state.servers) await quietly("server", () => stop(s, "SIGTERM", 8_000));
  await quietly("redis", () => stop(state.redis, "SIGKILL", 3_000));
  for (const c of [...children]) await quietly(c.label, () => stop(c, "SIGKILL", 3_000));
  if (state.pages) await quietly("page server", () => new Promise((r) => state.pages.close(r)));
  if (state.db) await quietly("database", () => psql(`DROP DATABASE IF EXISTS ${state.db} WITH (FORCE)`));
  if (state.dataDir) fs.rmSync(state.dataDir, { recursive: true, force: true });
}

let cleaning = null;
const finish = async (code) => {
  cleaning ??= cleanup();
  await cleaning;
  process.exit(code);
};
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    say(`${sig}: cleaning up`);
    void finish(130);
  });
}

// A backstop: every wait has its own, shorter timeout.
const watchdogMs = cfg.budgetMs + 10_000;
const watchdog = sleep(watchdogMs, null, { ref: false }).then(() => {
  throw new Error(`the run did not finish within ${watchdogMs / 1000} s`);
});

try {
  await Promise.race([main(), watchdog]);
} catch (e) {
  // Our own errors say what went wrong; a programming error needs its stack.
  fail(e instanceof TypeError || e instanceof ReferenceError || e instanceof SyntaxError ? e.stack : (e?.message ?? String(e)));
}
const digest = serverLogDigest();
if (digest.length) {
  say("server warnings and errors (logs in tests/browser/build/logs/):");
  for (const l of digest) console.log(l);
}
// One verdict per phase run (and for setup, the end checks and the time budget if they failed).
current.quiet = true;
for (const p of cfg.phases) if (PHASES.includes(p) && !current.ran.has(p)) fail("not run", p);
const buckets = [...new Set([...cfg.phases.filter((p) => PHASES.includes(p)), ...failures.map((f) => f.phase)])];
const failed = buckets.filter((b) => failures.some((f) => f.phase === b));
for (const b of buckets) {
  const mine = failures.filter((f) => f.phase === b);
  console.log(`  ${b}: ${mine.length ? `FAILED (${mine.length})` : "passed"}`);
  for (const f of mine.slice(0, 12)) console.log(`    - ${f.text}`);
  if (mine.length > 12) console.log(`    … ${mine.length - 12} more`);
}
say(failures.length ? `FAILED: ${failures.length} problem(s) in ${failed.join(", ")}` : "PASSED");
console.log(`browser-e2e: ${buckets.length - failed.length} passed, ${failed.length} failed`);
await finish(failures.length ? 1 : 0);
