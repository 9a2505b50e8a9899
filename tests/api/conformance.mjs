#!/usr/bin/env node
// conformance.mjs - fleetd's answers match its OpenAPI document.
//
//   node conformance.mjs PORT      (or FLEETD_HTTP_PORT=PORT)
//
// Calls every route of a running fleetd (a scratch one: it writes vehicles
// and trips) with good and bad input, and checks each answer twice: against
// docs/api.md's behaviour (the status this test expects) and against the
// document the server serves at /openapi.json (the status is declared for
// the operation, the Content-Type is one of the response's media types, the
// body validates against its schema, problems are problem+json). Prints
// each failure and exits 1 if there is any.
import { connect } from "node:net";
import { makeAjv } from "./openapi_ajv.mjs";

const port = process.argv[2] ?? process.env.FLEETD_HTTP_PORT;
if (!/^\d+$/.test(port ?? "")) {
  console.error("usage: node conformance.mjs PORT (a scratch fleetd: this test writes to it)");
  process.exit(2);
}
const BASE_URL = `http://127.0.0.1:${port}`;
const JSON_TYPES = new Set(["application/json", "application/problem+json", "application/geo+json"]);

let passed = 0;
const failures = [];
const check = (cond, what) => {
  if (cond) passed++;
  else {
    failures.push(what);
    console.log(`FAIL conformance: ${what}`);
  }
  return cond;
};

const doc = await (await fetch(`${BASE_URL}/openapi.json`)).json();
const { ajv, compile } = makeAjv(doc);
const problemSchema = doc.components?.schemas?.Problem;

function deref(obj) {
  while (obj?.$ref) {
    const parts = obj.$ref.replace(/^#\//, "").split("/").map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
    obj = parts.reduce((o, k) => o?.[k], doc);
  }
  return obj;
}

// The document's path template for a concrete path: exact paths first.
function templateOf(path) {
  if (doc.paths[path]) return path;
  const segs = path.split("/");
  for (const t of Object.keys(doc.paths)) {
    const ts = t.split("/");
    if (ts.length === segs.length && ts.every((s, i) => (/^\{.+\}$/.test(s) ? segs[i] !== "" : s === segs[i]))) return t;
  }
  return null;
}

function validate(schema, value, what) {
  let v;
  try {
    v = compile(schema).validate;
  } catch (e) {
    return check(false, `${what}: schema does not compile: ${e.message}`);
  }
  return check(v(value), `${what}: body does not match the document: ${ajv.errorsText(v.errors, { dataVar: "body" })}; body ${JSON.stringify(value).slice(0, 300)}`);
}

// One request; checks the expected status and the answer against the document.
async function call(method, path, { body, type, query, expect, undocumented } = {}) {
  const qs = query ? `?${new URLSearchParams(query)}` : "";
  const headers = {};
  if (body !== undefined) headers["content-type"] = type ?? "application/json";
  const init = { method, headers, signal: AbortSignal.timeout(10000) };
  if (body !== undefined) init.body = typeof body === "string" ? body : JSON.stringify(body);
  const what = `${method} ${path}${qs}`;
  let res;
  try {
    res = await fetch(BASE_URL + path + qs, init);
  } catch (e) {
    check(false, `${what}: ${e.cause?.message ?? e.message}`);
    return { status: 0 };
  }
  const text = await res.text();
  const ctype = res.headers.get("content-type") ?? "";
  const media = ctype.split(";")[0].trim().toLowerCase();
  let json;
  if (JSON_TYPES.has(media) && text !== "") {
    try {
      json = JSON.parse(text);
    } catch (e) {
      check(false, `${what}: ${media} body is not JSON: ${e.message}`);
    }
  }
  const out = { status: res.status, headers: res.headers, text, json, media };
  if (expect !== undefined)
    check([].concat(expect).includes(res.status), `${what}: status ${res.status}, want ${expect}; ${text.slice(0, 200)}`);
  if (res.status >= 400) {
    check(media === "application/problem+json", `${what}: error ${res.status} with Content-Type '${ctype}', want application/problem+json`);
    if (json !== undefined && problemSchema) validate(problemSchema, json, `${what} (${res.status} problem)`);
    if (json) check(json.status === res.status, `${what}: problem status ${json.status} != HTTP ${res.status}`);
  }
  if (undocumented) return out; // an unknown route or method: nothing to look up
  const tmpl = templateOf(path);
  const op = tmpl && doc.paths[tmpl][method.toLowerCase()];
  if (!check(op, `${what}: no operation in the document`)) return out;
  const rs = op.responses ?? {};
  const spec = deref(rs[String(res.status)] ?? rs[`${String(res.status)[0]}XX`] ?? rs.default);
  if (!check(spec, `${what}: status ${res.status} is not declared`)) return out;
  if (!spec.content) {
    check(text === "", `${what}: ${res.status} declares no content but has a ${text.length}-byte body`);
    return out;
  }
  const mt = spec.content[media] ?? spec.content[ctype];
  if (!check(mt, `${what}: Content-Type '${ctype}' is not among ${Object.keys(spec.content).join(", ")} for ${res.status}`)) return out;
  if (json !== undefined && mt.schema) validate(mt.schema, json, `${what} (${res.status})`);
  for (const [name, h] of Object.entries(spec.headers ?? {})) {
    if (deref(h).required) check(res.headers.has(name), `${what}: header ${name} missing`);
  }
  return out;
}

// ---- the routes ----
const now = Date.now();
const sec = (k) => now - 600000 + k * 1000; // timestamps 10 minutes back, 1 s apart

await call("GET", "/healthz", { expect: 200 });
await call("GET", "/readyz", { expect: 200 });
const m = await call("GET", "/metrics", { expect: 200 });
check(/^# (HELP|TYPE) /m.test(m.text ?? ""), "GET /metrics: not Prometheus text");
await call("GET", "/openapi.json", { expect: 200 });
await call("GET", "/v1/stats", { expect: 200 });

// positions
const p1 = await call("PUT", "/v1/vehicles/cv1/position", {
  body: { lon: -73.98, lat: 40.75, ts: sec(0), speed: 32.5, heading: 90, fleet: "yellow", status: "available" },
  expect: 200,
});
check(p1.json?.outcome === "applied" && p1.json?.vehicle?.id === "cv1", "PUT position: applied, vehicle cv1");
const p2 = await call("PUT", "/v1/vehicles/cv1/position", { body: { lon: -73.98, lat: 40.75, ts: sec(0) }, expect: 200 });
check(p2.json?.outcome === "stale", `PUT position again: outcome ${p2.json?.outcome}, want stale`);
await call("PUT", "/v1/vehicles/cv2/position", { body: { lon: -73.97, lat: 40.76 }, expect: 200 });
await call("PUT", "/v1/vehicles/cv1/position", { body: { lon: -73.98, lat: 91 }, expect: 400 });
await call("PUT", "/v1/vehicles/cv1/position", { body: { lon: "x", lat: 40 }, expect: 400 });
await call("PUT", "/v1/vehicles/cv1/position", { body: { lat: 40 }, expect: 400 });
await call("PUT", "/v1/vehicles/cv1/position", { body: "{not json", expect: 400 });
await call("PUT", "/v1/vehicles/cv1/position", { body: "[1,2]", expect: 400 });
await call("PUT", "/v1/vehicles/cv1/position", { body: '{"lon":1,"lat":2}', type: "text/csv", expect: 415 });
await tooLarge("PUT", "/v1/vehicles/cv1/position", "application/json");

const nd = [
  { id: "cv3", lon: -73.99, lat: 40.74, ts: sec(1), status: "busy" },
  { id: "cv4", lon: -73.96, lat: 40.77, ts: sec(1), fleet: "green" },
  { id: "cv5", lon: -73.96, lat: 95 },
].map((o) => JSON.stringify(o)).join("\n") + "\n";
const b = await call("POST", "/v1/positions", { body: nd, type: "application/x-ndjson", expect: 200 });
check(b.json?.lines === 3 && b.json?.applied === 2 && b.json?.failed === 1 && b.json?.errors?.[0]?.line === 3,
  `POST /v1/positions: want 3 lines, 2 applied, line 3 failed; got ${JSON.stringify(b.json)}`);
await call("POST", "/v1/positions", { body: "{}", type: "image/png", expect: 415 });
await tooLarge("POST", "/v1/positions", "application/x-ndjson");

// vehicles
const v = await call("GET", "/v1/vehicles/cv1", { expect: 200 });
check(v.json?.fleet === "yellow" && v.json?.status === "available", "GET vehicle: fleet and status as sent");
const v2 = await call("GET", "/v1/vehicles/cv2", { expect: 200 });
check(v2.json?.speed === null && v2.json?.heading === null && v2.json?.fleet === null && v2.json?.trip === null,
  "GET vehicle: unknown speed, heading, fleet, trip are null");
await call("GET", "/v1/vehicles/nobody", { expect: 404 });
const l1 = await call("GET", "/v1/vehicles", { query: { limit: 2 }, expect: 200 });
check(l1.json?.vehicles?.length === 2 && typeof l1.json?.next_cursor === "string", "GET /v1/vehicles?limit=2: 2 vehicles and a cursor");
const seen = new Set((l1.json?.vehicles ?? []).map((x) => x.id));
let cursor = l1.json?.next_cursor;
for (let i = 0; cursor && i < 10; i++) {
  const l = await call("GET", "/v1/vehicles", { query: { limit: 2, cursor }, expect: 200 });
  for (const x of l.json?.vehicles ?? []) check(!seen.has(x.id), `vehicle ${x.id} listed twice across pages`), seen.add(x.id);
  cursor = l.json?.next_cursor;
}
check(seen.size === 4, `paging listed ${seen.size} vehicles, want 4`);
await call("GET", "/v1/vehicles", { query: { status: "busy" }, expect: 200 });
await call("GET", "/v1/vehicles", { query: { fleet: "yellow", bbox: "-74.1,40.6,-73.7,40.9" }, expect: 200 });
const c = await call("GET", "/v1/vehicles", { query: { format: "compact", limit: 200000 }, expect: 200 });
check(c.json?.vehicles?.length === 4 && Array.isArray(c.json?.vehicles?.[0]), "compact list: 4 rows");
await call("GET", "/v1/vehicles", { query: { limit: 10001 }, expect: 400 });
await call("GET", "/v1/vehicles", { query: { limit: 0 }, expect: 400 });
await call("GET", "/v1/vehicles", { query: { status: "flying" }, expect: 400 });
await call("GET", "/v1/vehicles", { query: { bbox: "1,2,3" }, expect: 400 });

const nb = await call("GET", "/v1/vehicles/nearby", { query: { lon: -73.98, lat: 40.75, radius: 5000 }, expect: 200 });
const d = (nb.json?.vehicles ?? []).map((x) => x.distance_m);
check(d.length === 4 && d.every((x, i) => i === 0 || d[i - 1] <= x), `nearby: 4 vehicles nearest first, got ${JSON.stringify(d)}`);
await call("GET", "/v1/vehicles/nearby", { query: { lon: -73.98, lat: 40.75, radius: 5000, count: 1, status: "available", fleet: "yellow" }, expect: 200 });
await call("GET", "/v1/vehicles/nearby", { query: { lon: -73.98, lat: 40.75 }, expect: 400 });
await call("GET", "/v1/vehicles/nearby", { query: { lon: 200, lat: 40.75, radius: 10 }, expect: 400 });
await call("GET", "/v1/vehicles/within", { query: { bbox: "-74.1,40.6,-73.7,40.9", count: 10 }, expect: 200 });
await call("GET", "/v1/vehicles/within", { expect: 400 });

const ring = [[-74.0, 40.7], [-73.9, 40.7], [-73.9, 40.8], [-74.0, 40.8], [-74.0, 40.7]];
const hole = [[-73.985, 40.745], [-73.975, 40.745], [-73.975, 40.755], [-73.985, 40.755], [-73.985, 40.745]];
const poly = { type: "Polygon", coordinates: [ring] };
const w1 = await call("POST", "/v1/vehicles/within", { body: poly, expect: 200 });
check(w1.json?.vehicles?.length === 4, `within Polygon: ${w1.json?.vehicles?.length} vehicles, want 4`);
const w2 = await call("POST", "/v1/vehicles/within", { body: { type: "Polygon", coordinates: [ring, hole] }, expect: 200 });
check(w2.json?.vehicles?.length === 3 && !w2.json.vehicles.some((x) => x.id === "cv1"), "within Polygon with a hole: cv1 excluded");
await call("POST", "/v1/vehicles/within", { body: { type: "MultiPolygon", coordinates: [[ring]] }, expect: 200 });
await call("POST", "/v1/vehicles/within", { body: { type: "Feature", properties: null, geometry: poly }, expect: 200 });
await call("POST", "/v1/vehicles/within", {
  body: { type: "FeatureCollection", features: [{ type: "Feature", properties: {}, geometry: poly }] },
  query: { status: "busy", count: 5 },
  expect: 200,
});
await call("POST", "/v1/vehicles/within", { body: poly, type: "application/geo+json", expect: 200 });
await call("POST", "/v1/vehicles/within", { body: { type: "Point", coordinates: [0, 0] }, expect: 400 });

// trips
const t1 = await call("POST", "/v1/trips", { body: { vehicle: "cv1", id: "ct1", ts: sec(2) }, expect: 201 });
check(t1.json?.id === "ct1" && t1.json?.state === "running" && t1.json?.end === null, "POST /v1/trips: running trip ct1");
await call("POST", "/v1/trips", { body: { vehicle: "cv1" }, expect: 409 });
await call("POST", "/v1/trips", { body: { vehicle: "cv2", id: "ct1" }, expect: 409 });
await call("POST", "/v1/trips", { body: { vehicle: "nobody" }, expect: 404 });
await call("POST", "/v1/trips", { body: { id: "x" }, expect: 400 });
const t2 = await call("POST", "/v1/trips", { body: { vehicle: "cv2" }, expect: 201 });
for (let k = 3; k < 8; k++)
  await call("PUT", "/v1/vehicles/cv1/position", { body: { lon: -73.98 + k * 0.0005, lat: 40.75, ts: sec(k), speed: 30 }, expect: 200 });
const g1 = await call("GET", "/v1/trips/ct1", { expect: 200 });
check(typeof g1.json?.polyline === "string" && g1.json?.path === undefined && g1.json?.distance_m > 0, "GET trip: polyline, distance");
const g2 = await call("GET", "/v1/trips/ct1", { query: { path: "geojson" }, expect: 200 });
check(g2.json?.path?.type === "LineString" && g2.json?.polyline === undefined, "GET trip ?path=geojson: LineString, no polyline");
await call("GET", "/v1/trips/nope", { expect: 404 });
const e1 = await call("POST", "/v1/trips/ct1/end", { body: { ts: sec(8) }, expect: 200 });
check(e1.json?.state === "ended" && e1.json?.end === sec(8), "POST end: ended at ts");
await call("POST", "/v1/trips/ct1/end", { body: {}, expect: 409 });
await call("POST", "/v1/trips/nope/end", { body: {}, expect: 404 });
if (t2.json?.id) await call("POST", `/v1/trips/${encodeURIComponent(t2.json.id)}/end`, { body: {}, expect: 200 });
const tl = await call("GET", "/v1/trips", { query: { vehicle: "cv1" }, expect: 200 });
check(tl.json?.trips?.[0]?.id === "ct1", "GET /v1/trips?vehicle=cv1: ct1");
await call("GET", "/v1/trips", { query: { vehicle: "cv1", from: sec(0), to: sec(9), limit: 5 }, expect: 200 });
await call("GET", "/v1/trips", { expect: 400 });

// areas, events
const a = await call("GET", "/v1/areas", { query: { level: 6 }, expect: 200 });
check((a.json?.features?.length ?? 0) > 0, "GET /v1/areas: cells with vehicles");
await call("GET", "/v1/areas", { query: { level: 5, bbox: "-74.1,40.6,-73.7,40.9", window: 600 }, expect: 200 });
await call("GET", "/v1/areas", { query: { level: 9 }, expect: 400 });
await call("GET", "/v1/events", { query: { rate: 0 }, expect: 400 });
await call("GET", "/v1/events", { query: { types: "nothing" }, expect: 400 });
await sse();

// deletes, the dashboard, unknown routes and methods
await call("DELETE", "/v1/vehicles/cv4", { expect: 204 });
await call("DELETE", "/v1/vehicles/cv4", { expect: 404 });
await call("GET", "/", { expect: [200, 404] });
await call("GET", "/v1/nothing", { expect: 404, undocumented: true });
const r405 = await call("DELETE", "/v1/stats", { expect: 405, undocumented: true });
check(/\bGET\b/.test(r405.headers?.get("allow") ?? ""), `405: Allow '${r405.headers?.get("allow")}' lacks GET`);
await call("PATCH", "/v1/vehicles/cv1", { expect: 405, undocumented: true });

// A body declared larger than any limit (64 MiB) is refused from its
// Content-Length: only the headers are sent (fetch would still be writing
// the body when the server answers and closes).
async function tooLarge(method, path, type) {
  const what = `${method} ${path} (Content-Length 64 MiB)`;
  const raw = await new Promise((resolve) => {
    const sock = connect(Number(port), "127.0.0.1");
    let data = Buffer.alloc(0);
    const done = () => { sock.destroy(); resolve(data.toString("latin1")); };
    sock.setTimeout(5000, done);
    sock.on("error", done);
    sock.on("end", done);
    sock.on("data", (d) => {
      data = Buffer.concat([data, d]);
      const s = data.toString("latin1");
      const h = s.indexOf("\r\n\r\n");
      const len = /\r\ncontent-length: *(\d+)/i.exec(s)?.[1];
      if (h >= 0 && len !== undefined && data.length >= h + 4 + Number(len)) done();
    });
    sock.write(`${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${type}\r\nContent-Length: ${64 << 20}\r\n\r\n`);
  });
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(raw)?.[1]);
  const h = raw.indexOf("\r\n\r\n");
  const ctype = /\r\ncontent-type: *([^\r]*)/i.exec(raw)?.[1] ?? "";
  check(status === 413, `${what}: status ${status || "none"}, want 413`);
  check(ctype.startsWith("application/problem+json"), `${what}: Content-Type '${ctype}'`);
  let body;
  try {
    body = JSON.parse(raw.slice(h + 4));
  } catch {
    return check(false, `${what}: body is not JSON: ${raw.slice(h + 4, h + 200)}`);
  }
  validate(problemSchema, body, what);
  const op = doc.paths[templateOf(path)]?.[method.toLowerCase()];
  check(op?.responses?.["413"], `${what}: 413 not declared`);
}

// The stream: headers as documented, a stats event, a trip_started event.
async function sse() {
  const what = "GET /v1/events";
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 5000);
  try {
    const res = await fetch(`${BASE_URL}/v1/events?types=stats,trips`, { signal: ctl.signal });
    check(res.status === 200, `${what}: status ${res.status}`);
    const ct = res.headers.get("content-type") ?? "";
    const op = doc.paths["/v1/events"]?.get;
    const spec = deref(op?.responses?.["200"]);
    check(ct.startsWith("text/event-stream") && spec?.content?.["text/event-stream"], `${what}: Content-Type '${ct}' undocumented`);
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    const got = {};
    let started = false;
    while (!(got.stats && got.trip_started)) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const ev = /^event: ?(.*)$/m.exec(block)?.[1];
        const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.replace(/^data: ?/, "")).join("\n");
        if (!ev || got[ev]) continue;
        got[ev] = true;
        let obj;
        try {
          obj = JSON.parse(data);
        } catch (e) {
          check(false, `${what}: ${ev} data is not JSON: ${data.slice(0, 200)}`);
          continue;
        }
        const s = { stats: "Stats", trip_started: "Trip", trip_ended: "Trip", move: "MoveEvent" }[ev];
        if (s && doc.components.schemas[s]) validate(doc.components.schemas[s], obj, `${what} event ${ev}`);
        if (ev === "trip_started" || ev === "trip_ended")
          check(obj.polyline === undefined && obj.path === undefined, `${what}: ${ev} carries a path`);
      }
      if (got.stats && !started) {
        started = true; // the stream is live: make a trip_started happen
        await call("POST", "/v1/trips", { body: { vehicle: "cv3", id: "ct-sse" }, expect: 201 });
      }
    }
    check(got.stats, `${what}: no stats event within 5 s`);
    check(got.trip_started, `${what}: no trip_started event within 5 s of POST /v1/trips`);
  } catch (e) {
    check(false, `${what}: ${e.name === "AbortError" ? "timed out" : e.message}`);
  } finally {
    clearTimeout(timer);
    ctl.abort();
  }
}

console.log(`conformance: ${passed} passed, ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
