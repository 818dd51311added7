// The test page: signs in, creates a project and starts imports with the client typed from the
// committed OpenAPI document (openapi-fetch), and follows them with EventSource. It records every
// event, (re)connection, error and reset; the Node runner drives the phases through `window.e2e`
// and asks `verify()` whether everything arrived in order, once.

import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "../build/schema";

type Schemas = components["schemas"];
type Operation = Schemas["Operation"];
type OperationStatus = Schemas["OperationStatus"];
type StreamEvent = Schemas["StreamEvent"];
type ImportOperation = Extract<Schemas["StartOperation"], { kind: "documents.import" }>;
type ImportDocument = ImportOperation["input"]["documents"][number];

type ProjectStreamPath = "/api/v1/projects/{project_id}/events";
type OperationStreamPath = "/api/v1/projects/{project_id}/operations/{operation_id}/events";
type StreamPath = ProjectStreamPath | OperationStreamPath;
/** The query a stream takes (`ticket`, `last_event_id`), straight from the document. */
type StreamQuery<P extends StreamPath> = NonNullable<paths[P]["get"]["parameters"]["query"]>;
type StreamPathParams<P extends StreamPath> = paths[P]["get"]["parameters"]["path"];

const TERMINAL: ReadonlySet<string> = new Set(["operation.succeeded", "operation.failed", "operation.cancelled"]);
const TERMINAL_STATUS: ReadonlySet<OperationStatus> = new Set<OperationStatus>(["succeeded", "failed", "cancelled"]);
/** EventSource delivers named events only to listeners of that name: every type the server sends. */
const EVENT_TYPES = [
  "operation.queued",
  "operation.running",
  "operation.progress",
  "operation.succeeded",
  "operation.failed",
  "operation.cancelled",
  "operation.cancel_requested",
  "reset",
  "message",
] as const;
/** How long the page polls an operation after a reset before giving up. */
const REFRESH_LIMIT_MS = 40_000;

interface Received {
  id: string;
  type: string;
  op: string | null;
  progress: number | null;
  phase: string;
  at: number;
  /** For a reset: the operations it interrupted on this stream (started, end not yet received). */
  affects?: string[];
}

interface Mark {
  phase: string;
  at: number;
}

interface Stream {
  name: string;
  kind: "project" | "operation";
  op: string | null;
  url: string;
  es: EventSource;
  got: Received[];
  ids: Set<string>;
  lastId: string | null;
  /** Each connection, with the last id received before it (what Last-Event-ID must say). */
  opens: (Mark & { lastId: string | null })[];
  errors: (Mark & { readyState: number })[];
  resets: (Mark & { lastIdBefore: string | null; affects: string[] })[];
  closedByPage: boolean;
  problems: Failure[];
}

/** A failed check and the phase it belongs to. */
export interface Failure {
  phase: string;
  text: string;
}

interface Refresh {
  stream: string;
  resetAt: number;
  /** The status the first GET after the reset returned. */
  first: OperationStatus | null;
  /** The status the page polled until (a terminal one, unless it gave up). */
  last: OperationStatus | null;
  /** What ended the polling: a terminal status, the terminal event arriving after all, or time. */
  endedBy: "status" | "event" | "timeout" | null;
  polls: number;
  error: string | null;
}

interface OpRecord {
  id: string;
  phase: string;
  startedAt: number;
  postMs: number;
  documents: number;
  stream: Stream;
  refreshes: Refresh[];
}

export interface StreamSummary {
  name: string;
  kind: string;
  url: string;
  events: number;
  eventsByPhase: Record<string, number>;
  opensByPhase: Record<string, number>;
  reconnectsByPhase: Record<string, number>;
  /** Reconnects while an import this stream follows was under way (its end not yet received). */
  midImportReconnectsByPhase: Record<string, number>;
  errorsByPhase: Record<string, number>;
  resetsByPhase: Record<string, number>;
  opens: number;
  readyState: number;
  closedByPage: boolean;
  lastId: string | null;
  ids: string[];
  /** Every event as `<ms since load> <id> <type> <progress>`, for the run's report.json. */
  received: string[];
  /** Connections: when, in which phase, and the last id received before each. */
  connections: { at: number; phase: string; lastId: string | null }[];
  problems: Failure[];
}

export interface OpSummary {
  id: string;
  phase: string;
  postMs: number;
  durationMs: number | null;
  projectSequence: string;
  operationSequence: string;
  refreshes: Refresh[];
}

export interface Report {
  streams: StreamSummary[];
  ops: OpSummary[];
  failures: Failure[];
  /** Worth knowing, not failures: e.g. events that never followed a reset (the state was fetched). */
  notes: string[];
}

export interface E2E {
  init(options: { api: string; email: string }): Promise<{ project: string; user: string }>;
  setPhase(phase: string): void;
  startImport(documents: number): Promise<{ operation: string; postMs: number; status: number }>;
  waitOperation(operation: string, timeoutMs: number): Promise<{ status: string; ms: number }>;
  projectStreamState(): { readyState: number; opens: number; lastId: string | null };
  fetchOperation(operation: string): Promise<{ status: number; operation: Operation | null }>;
  settle(timeoutMs: number): Promise<number>;
  report(): Report;
}

declare global {
  interface Window {
    e2e: E2E;
  }
}

let phase = "setup";
let projectId = "";
let ticket = "";
let apiBase = "";
let token = "";
let projectStream: Stream | null = null;
const streams: Stream[] = [];
const ops = new Map<string, OpRecord>();

const logEl = document.getElementById("log");
function log(line: string): void {
  const text = `[${(performance.now() / 1000).toFixed(2)}s] ${line}`;
  console.log(text);
  if (logEl) logEl.textContent += text + "\n";
}

const auth: Middleware = {
  onRequest({ request }) {
    if (token) request.headers.set("Authorization", `Bearer ${token}`);
    return request;
  },
};

let api = createClient<paths>({ baseUrl: "" });

function describe(what: string, response: Response, error: unknown): Error {
  return new Error(`${what}: HTTP ${response.status} ${JSON.stringify(error)}`);
}

/** `<ms>-<seq>` as a pair of integers (either part may exceed 2^53). */
function parseId(id: string): [bigint, bigint] | null {
  const m = /^([0-9]{1,19})-([0-9]{1,19})$/.exec(id);
  return m && m[1] !== undefined && m[2] !== undefined ? [BigInt(m[1]), BigInt(m[2])] : null;
}

function compareIds(a: string, b: string): number {
  const x = parseId(a);
  const y = parseId(b);
  if (!x || !y) return Number.NaN;
  if (x[0] !== y[0]) return x[0] < y[0] ? -1 : 1;
  if (x[1] !== y[1]) return x[1] < y[1] ? -1 : 1;
  return 0;
}

function streamUrl<P extends StreamPath>(path: P, params: StreamPathParams<P>, query: StreamQuery<P>): string {
  const filled = path.replace(/\{([a-z_]+)\}/g, (_, name: string) => {
    const value = (params as Record<string, string | undefined>)[name];
    if (value === undefined) throw new Error(`missing path parameter ${name}`);
    return encodeURIComponent(value);
  });
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (typeof v === "string") search.set(k, v);
  return `${apiBase}${filled}?${search.toString()}`;
}

function countBy<T extends Mark>(marks: T[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of marks) out[m.phase] = (out[m.phase] ?? 0) + 1;
  return out;
}

function problem(s: Stream, text: string): void {
  if (s.problems.length < 50) s.problems.push({ phase, text });
  log(`PROBLEM ${s.name}: ${text}`);
}

function open(name: string, kind: Stream["kind"], op: string | null, url: string): Stream {
  const es = new EventSource(url);
  const s: Stream = {
    name,
    kind,
    op,
    url,
    es,
    got: [],
    ids: new Set(),
    lastId: null,
    opens: [],
    errors: [],
    resets: [],
    closedByPage: false,
    problems: [],
  };
  es.addEventListener("open", () => {
    s.opens.push({ phase, at: performance.now(), lastId: s.lastId });
    if (s.opens.length > 1) log(`${name}: reconnected (#${s.opens.length - 1}) after ${s.lastId ?? "nothing"}`);
  });
  es.addEventListener("error", () => {
    s.errors.push({ phase, at: performance.now(), readyState: es.readyState });
    if (es.readyState === EventSource.CLOSED && !s.closedByPage) {
      problem(s, `EventSource CLOSED by the browser in phase ${phase} (a non-200 or non-event-stream answer to a reconnect): it will not retry`);
    }
  });
  for (const type of EVENT_TYPES) {
    es.addEventListener(type, (ev) => onEvent(s, type, ev as MessageEvent<string>));
  }
  streams.push(s);
  return s;
}

function onEvent(s: Stream, type: string, msg: MessageEvent<string>): void {
  let body: StreamEvent;
  try {
    body = JSON.parse(msg.data) as StreamEvent;
  } catch {
    problem(s, `unparsable data for ${type}: ${msg.data.slice(0, 200)}`);
    return;
  }
  if (type === "message") problem(s, `event without an event: field (${body.type})`);
  if (body.type !== type && type !== "message") problem(s, `event: ${type} carries data.type ${body.type}`);
  if (body.project_id !== projectId) problem(s, `event ${body.id} of another project ${body.project_id}`);
  const op = body.operation_id ?? null;
  if (s.kind === "operation" && op !== s.op && type !== "reset") problem(s, `event ${body.id} ${type} of operation ${op} on ${s.op}'s stream`);
  const progressValue = (body.data as { progress?: unknown } | null)?.progress;
  const progress = typeof progressValue === "number" ? progressValue : null;
  const rec: Received = { id: body.id, type, op, progress, phase, at: performance.now() };

  if (type === "reset") {
    if (body.id !== "") problem(s, `reset with id ${body.id}`);
    // The history after our Last-Event-ID is gone: fetch the current state of every operation
    // this stream follows whose end it has not delivered yet.
    const followed = s.kind === "operation" ? [ops.get(s.op ?? "")] : [...ops.values()];
    const affected = followed.filter((r): r is OpRecord => r !== undefined && !endReceived(s, r.id));
    rec.affects = affected.map((r) => r.id);
    s.resets.push({ phase, at: rec.at, lastIdBefore: s.lastId, affects: rec.affects });
    s.got.push(rec);
    log(`${s.name}: reset after ${s.lastId ?? "nothing"}; fetching ${affected.length} operation(s)`);
    for (const r of affected) void refresh(r, s, rec.at);
    return;
  }
  if (body.id === "") {
    // The operation stream's "already ended" answer: the final state, without a history ID.
    if (!(s.kind === "operation" && TERMINAL.has(type))) problem(s, `${type} without an id`);
  } else {
    if (msg.lastEventId !== body.id) problem(s, `id: ${msg.lastEventId} but data.id ${body.id}`);
    if (parseId(body.id) === null) problem(s, `malformed id ${body.id}`);
    if (s.ids.has(body.id)) problem(s, `id ${body.id} (${type}) received twice`);
    else if (s.lastId !== null && !(compareIds(body.id, s.lastId) > 0)) problem(s, `id ${body.id} (${type}) after ${s.lastId}: not increasing`);
    s.ids.add(body.id);
    s.lastId = body.id;
  }
  s.got.push(rec);
  if (s.kind === "operation" && TERMINAL.has(type)) {
    // The stream ends after the terminal event; close it so EventSource does not reconnect.
    s.closedByPage = true;
    s.es.close();
  }
}

async function refresh(rec: OpRecord, s: Stream, resetAt: number): Promise<void> {
  const r: Refresh = { stream: s.name, resetAt, first: null, last: null, endedBy: null, polls: 0, error: null };
  rec.refreshes.push(r);
  const deadline = performance.now() + REFRESH_LIMIT_MS;
  while (performance.now() < deadline) {
    if (r.polls > 0 && endReceived(s, rec.id)) {
      r.endedBy = "event";
      return;
    }
    r.polls++;
    try {
      const { data, error, response } = await api.GET("/api/v1/projects/{project_id}/operations/{operation_id}", {
        params: { path: { project_id: projectId, operation_id: rec.id } },
      });
      if (data) {
        if (r.first === null) r.first = data.status;
        r.last = data.status;
        if (TERMINAL_STATUS.has(data.status)) {
          r.endedBy = "status";
          log(`${s.name}: after reset, operation ${rec.id} is ${data.status} (first GET: ${r.first})`);
          if (rec.stream.es.readyState !== EventSource.CLOSED && !rec.stream.closedByPage && s === rec.stream) {
            rec.stream.closedByPage = true;
            rec.stream.es.close();
          }
          return;
        }
      } else {
        r.error = `HTTP ${response.status} ${JSON.stringify(error)}`;
      }
    } catch (e) {
      r.error = String(e);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  r.endedBy = "timeout";
  r.error = (r.error ?? "") + ` still ${r.last} after ${REFRESH_LIMIT_MS} ms`;
}

function endReceived(s: Stream, op: string): boolean {
  return s.got.some((g) => g.op === op && TERMINAL.has(g.type));
}

/** One operation's events on one stream, as a compact string (`Q R P×n S`). */
function sequenceOf(s: Stream, op: string): string {
  const parts: string[] = [];
  for (const g of s.got) {
    if (g.type === "reset") {
      if (g.affects?.includes(op)) parts.push("RESET");
      continue;
    }
    if (g.op !== op) continue;
    const short = g.type.replace("operation.", "");
    const last = parts[parts.length - 1];
    if (short === "progress" && last?.startsWith("progress")) {
      const n = Number(/×(\d+)/.exec(last)?.[1] ?? "1");
      parts[parts.length - 1] = `progress×${n + 1}`;
    } else {
      parts.push(g.id === "" ? `${short}(no id)` : short);
    }
  }
  return parts.join(" ");
}

/** What is wrong with one operation's events on one stream ([] when all is well). */
function checkSequence(s: Stream, rec: OpRecord): string[] {
  const mine = s.got.filter((g) => g.op === rec.id && g.type !== "reset");
  const resetAfterStart = s.resets.some((r) => r.affects.includes(rec.id));
  const strict: string[] = [];
  const expect = ["operation.queued", "operation.running"];
  let i = 0;
  for (const want of expect) {
    const g = mine[i];
    if (!g || g.type !== want) {
      strict.push(`expected ${want} as event ${i + 1}, got ${g ? g.type : "nothing"}`);
      break;
    }
    i++;
  }
  let lastProgress = -1;
  if (strict.length === 0) {
    while (mine[i]?.type === "operation.progress") {
      const p = mine[i]?.progress ?? -1;
      if (p < lastProgress) strict.push(`progress went back from ${lastProgress} to ${p}`);
      lastProgress = p;
      i++;
    }
    const end = mine[i];
    if (!end) strict.push("no operation.succeeded");
    else if (!TERMINAL.has(end.type)) strict.push(`${end.type} again after ${i} events (progress had reached ${lastProgress})`);
    else if (end.type !== "operation.succeeded") strict.push(`ended with ${end.type}, not operation.succeeded`);
    else if (i + 1 < mine.length) strict.push(`${mine.length - i - 1} event(s) after operation.succeeded (${mine[i + 1]?.type})`);
    if (end?.type === "operation.succeeded" && end.id === "" && s.kind === "project") strict.push("operation.succeeded without an id");
  }
  if (strict.length === 0) return [];
  if (!resetAfterStart) {
    return strict.map((p) => `${s.name}, operation ${rec.id} (${rec.phase}): ${p}, and no reset arrived [${sequenceOf(s, rec.id)}]`);
  }
  // A reset arrived: the page must have fetched the state, which must end succeeded; what
  // arrived after the (last) reset starts over, and must still be each event at most once,
  // progress never going back.
  const out: string[] = [];
  let lastReset = -1;
  s.got.forEach((g, k) => {
    if (g.type === "reset" && g.affects?.includes(rec.id)) lastReset = k;
  });
  const after = s.got.slice(lastReset + 1).filter((g) => g.op === rec.id && g.type !== "reset");
  const refreshes = rec.refreshes.filter((r) => r.stream === s.name);
  if (refreshes.length === 0) out.push("a reset arrived but the state was not fetched");
  else if (!refreshes.some((r) => r.last === "succeeded" || (r.endedBy === "event" && mine.some((g) => g.type === "operation.succeeded")))) out.push(`state after reset: ${refreshes.map((r) => `${r.first}→${r.last}${r.error ? ` (${r.error})` : ""}`).join(", ")}, not succeeded`);
  for (const t of ["operation.queued", "operation.running", "operation.succeeded"]) {
    const n = after.filter((g) => g.type === t && g.id !== "").length;
    if (n > 1) out.push(`${t} ${n} times after the reset`);
  }
  let lp = -1;
  for (const g of after) {
    if (g.type !== "operation.progress") continue;
    if ((g.progress ?? -1) < lp) out.push(`progress went back from ${lp} to ${g.progress}`);
    lp = g.progress ?? -1;
  }
  return out.map((p) => `${s.name}, operation ${rec.id} (${rec.phase}): ${p} [${sequenceOf(s, rec.id)}]`);
}

function terminalSeen(s: Stream, rec: OpRecord): boolean {
  if (s.got.some((g) => g.op === rec.id && TERMINAL.has(g.type))) return true;
  const r = rec.refreshes.find((x) => x.stream === s.name && x.last !== null && TERMINAL_STATUS.has(x.last));
  return r !== undefined;
}

function midImport(s: Stream, at: number): boolean {
  const followed = s.kind === "operation" ? [ops.get(s.op ?? "")] : [...ops.values()];
  return followed.some((rec) => {
    if (!rec || rec.startedAt > at) return false;
    const end = s.got.find((g) => g.op === rec.id && TERMINAL.has(g.type));
    return end === undefined || end.at > at;
  });
}

function summarize(s: Stream): StreamSummary {
  return {
    name: s.name,
    kind: s.kind,
    url: s.url,
    events: s.got.length,
    eventsByPhase: countBy(s.got),
    opensByPhase: countBy(s.opens),
    reconnectsByPhase: countBy(s.opens.slice(1)),
    midImportReconnectsByPhase: countBy(s.opens.slice(1).filter((o) => midImport(s, o.at))),
    errorsByPhase: countBy(s.errors),
    resetsByPhase: countBy(s.resets),
    opens: s.opens.length,
    readyState: s.es.readyState,
    closedByPage: s.closedByPage,
    lastId: s.lastId,
    ids: [...s.ids],
    received: s.got.map((g) => `${g.at.toFixed(0)} ${g.id || "-"} ${g.type} ${g.progress ?? ""}`.trim()),
    connections: s.opens.map((o) => ({ at: Math.round(o.at), phase: o.phase, lastId: o.lastId })),
    problems: [...s.problems],
  };
}

const e2e: E2E = {
  async init({ api: base, email }) {
    apiBase = base;
    api = createClient<paths>({ baseUrl: base });
    api.use(auth);
    const login = await api.POST("/api/v1/auth/dev-login", { body: { email, name: "Browser E2E" } });
    if (!login.data) throw describe("dev-login", login.response, login.error);
    if (!login.data.access_token) throw new Error("dev-login returned no access_token");
    token = login.data.access_token;
    const me = await api.GET("/api/v1/auth/me");
    if (!me.data) throw describe("me", me.response, me.error);
    const created = await api.POST("/api/v1/projects", { body: { name: `browser e2e ${new Date().toISOString()}`, language: "en" } });
    if (!created.data) throw describe("create project", created.response, created.error);
    projectId = created.data.id;
    const t = await api.POST("/api/v1/projects/{project_id}/events/ticket", { params: { path: { project_id: projectId } } });
    if (!t.data) throw describe("ticket", t.response, t.error);
    ticket = t.data.ticket;
    if (t.data.expires_in < 600) throw new Error(`ticket expires in ${t.data.expires_in} s: too soon to survive the run's reconnects`);
    projectStream = open("project stream", "project", null, streamUrl("/api/v1/projects/{project_id}/events", { project_id: projectId }, { ticket }));
    // The stream is open before the first import, so it sees every event from the start.
    const deadline = performance.now() + 10_000;
    while (projectStream.opens.length === 0) {
      if (performance.now() > deadline) throw new Error(`project stream did not open (readyState ${projectStream.es.readyState})`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    log(`signed in as ${me.data.email}, project ${projectId}`);
    return { project: projectId, user: me.data.id };
  },

  setPhase(p) {
    phase = p;
    log(`phase ${p}`);
  },

  async startImport(n) {
    const documents: ImportDocument[] = [];
    for (let i = 0; i < n; i++) {
      documents.push({ title: `${phase} document ${i}`, content: `Imported by the browser test in phase ${phase}: document ${i} of ${n}.`, language: "en", metadata: { phase, i } });
    }
    const startedAt = performance.now();
    const started = await api.POST("/api/v1/projects/{project_id}/operations", {
      params: { path: { project_id: projectId } },
      body: { kind: "documents.import", input: { documents } },
    });
    const postMs = Math.round(performance.now() - startedAt);
    if (!started.data) throw describe("start import", started.response, started.error);
    const operation = started.data.id;
    if (started.data.status !== "queued" && !TERMINAL_STATUS.has(started.data.status) && started.data.status !== "running") {
      throw new Error(`new operation has status ${started.data.status}`);
    }
    const stream = open(
      `operation stream ${phase}/${operation.slice(-6)}`,
      "operation",
      operation,
      streamUrl("/api/v1/projects/{project_id}/operations/{operation_id}/events", { project_id: projectId, operation_id: operation }, { ticket }),
    );
    ops.set(operation, { id: operation, phase, startedAt, postMs, documents: n, stream, refreshes: [] });
    log(`import ${operation} of ${n} documents started (${postMs} ms, HTTP ${started.response.status})`);
    return { operation, postMs, status: started.response.status };
  },

  async waitOperation(operation, timeoutMs) {
    const rec = ops.get(operation);
    if (!rec || !projectStream) throw new Error(`unknown operation ${operation}`);
    const ps = projectStream;
    const started = performance.now();
    // Followed to its end on both streams, and any state fetch a reset started has concluded.
    while (!(terminalSeen(ps, rec) && terminalSeen(rec.stream, rec) && rec.refreshes.every((r) => r.endedBy !== null))) {
      if (performance.now() - started > timeoutMs) {
        throw new Error(
          `operation ${operation} not followed to its end within ${timeoutMs} ms: project stream [${sequenceOf(ps, operation)}] (readyState ${ps.es.readyState}), ` +
            `operation stream [${sequenceOf(rec.stream, operation)}] (readyState ${rec.stream.es.readyState}); after resets: ${JSON.stringify(rec.refreshes)}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // A stream whose operation is known to have ended (its state fetched after a reset) has
    // nothing more to say: close it so EventSource does not reconnect.
    if (!rec.stream.closedByPage) {
      rec.stream.closedByPage = true;
      rec.stream.es.close();
    }
    const end = rec.stream.got.find((g) => TERMINAL.has(g.type)) ?? ps.got.find((g) => g.op === operation && TERMINAL.has(g.type));
    return { status: end ? end.type : `fetched ${rec.refreshes.map((r) => r.last).join("/")}`, ms: Math.round(performance.now() - rec.startedAt) };
  },

  projectStreamState() {
    const ps = projectStream;
    if (!ps) return { readyState: -1, opens: 0, lastId: null };
    return { readyState: ps.es.readyState, opens: ps.opens.length, lastId: ps.lastId };
  },

  async fetchOperation(operation) {
    const { data, response } = await api.GET("/api/v1/projects/{project_id}/operations/{operation_id}", {
      params: { path: { project_id: projectId, operation_id: operation } },
    });
    return { status: response.status, operation: data ?? null };
  },

  async settle(timeoutMs) {
    // Let streams that are behind (e.g. after a reset) catch up before the verdict.
    const started = performance.now();
    const behind = () => (projectStream ? [...ops.values()].filter((r) => !endReceived(projectStream as Stream, r.id)).length : 0);
    while (behind() > 0 && performance.now() - started < timeoutMs) await new Promise((resolve) => setTimeout(resolve, 100));
    return behind();
  },

  report() {
    const failures: Failure[] = [];
    const notes: string[] = [];
    for (const s of streams) for (const p of s.problems) failures.push({ phase: p.phase, text: `${s.name}: ${p.text}` });
    const ps = projectStream;
    if (ps && ps.es.readyState === EventSource.CLOSED) failures.push({ phase, text: "project stream: EventSource ended CLOSED while it should continue" });
    const opSummaries: OpSummary[] = [];
    for (const rec of ops.values()) {
      const add = (text: string) => failures.push({ phase: rec.phase, text });
      if (ps) checkSequence(ps, rec).forEach(add);
      checkSequence(rec.stream, rec).forEach(add);
      if (!rec.stream.closedByPage && rec.stream.es.readyState === EventSource.CLOSED) add(`${rec.stream.name}: CLOSED before its operation ended`);
      // Unless a reset interrupted the operation on either stream, both must carry the same events
      // of it (the operation stream's final event may be its id-less "already ended" answer).
      const interrupted = (st: Stream) => st.resets.some((r) => r.affects.includes(rec.id));
      if (ps && !interrupted(ps) && !interrupted(rec.stream)) {
        const a = ps.got.filter((g) => g.op === rec.id).map((g) => g.id);
        const b = rec.stream.got.filter((g) => g.id !== "").map((g) => g.id);
        const missing = b.filter((id) => !a.includes(id)).concat(a.filter((id) => !b.includes(id)));
        const lastIsSynthetic = rec.stream.got[rec.stream.got.length - 1]?.id === "";
        const allowed = lastIsSynthetic && missing.length === 1 && missing[0] === a[a.length - 1];
        const resumedAfter = rec.stream.opens[rec.stream.opens.length - 1]?.lastId ?? null;
        const lostOnResume = lastIsSynthetic && resumedAfter !== null && missing.every((id) => a.includes(id) && compareIds(id, resumedAfter) > 0);
        if (missing.length > 0 && !allowed && lostOnResume) {
          add(
            `${rec.stream.name}: resumed with Last-Event-ID ${resumedAfter} after the operation had ended; the server answered with the id-less final state ` +
              `and ended, so ${missing.length} event(s) after ${resumedAfter} never arrived (${missing.slice(0, 2).join(", ")} … ${missing[missing.length - 1]}; the project stream has them)`,
          );
        } else if (missing.length > 0 && !allowed) {
          add(`operation ${rec.id} (${rec.phase}): the project and operation streams differ in ${missing.length} event(s), e.g. ${missing.slice(0, 3).join(", ")}`);
        }
      }
      for (const st of ps ? [ps, rec.stream] : [rec.stream]) {
        if (interrupted(st) && !endReceived(st, rec.id)) {
          const lastEv = st.got.filter((g) => g.op === rec.id).pop();
          notes.push(`${st.name}: after a reset, operation ${rec.id}'s end never arrived (last: ${lastEv ? `${lastEv.type} ${lastEv.progress ?? ""}` : "nothing"}); the state fetched after the reset: ${rec.refreshes.filter((r) => r.stream === st.name).map((r) => r.last).join(", ")}`);
        }
      }
      const end = ps?.got.find((g) => g.op === rec.id && TERMINAL.has(g.type));
      opSummaries.push({
        id: rec.id,
        phase: rec.phase,
        postMs: rec.postMs,
        durationMs: end ? Math.round(end.at - rec.startedAt) : null,
        projectSequence: ps ? sequenceOf(ps, rec.id) : "",
        operationSequence: sequenceOf(rec.stream, rec.id),
        refreshes: rec.refreshes,
      });
    }
    return { streams: streams.map(summarize), ops: opSummaries, failures, notes };
  },
};

window.e2e = e2e;
log("page ready");
