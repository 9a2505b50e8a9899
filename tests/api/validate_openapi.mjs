#!/usr/bin/env node
// validate_openapi.mjs - checks fleetd's OpenAPI document.
//
//   node validate_openapi.mjs [PORT]     GET http://127.0.0.1:PORT/openapi.json
//   FLEETD_HTTP_PORT=P node validate_openapi.mjs
//   node validate_openapi.mjs            src/net/openapi.json from disk
//   node validate_openapi.mjs FILE       that file
//
// 1. The whole document against the OpenAPI 3.1 schema, with
//    @seriousme/openapi-schema-validator (it also checks that every $ref
//    resolves).
// 2. What that schema leaves open (a Schema Object there is "any object"):
//    every schema is checked against the JSON Schema 2020-12 meta-schema
//    and compiled by Ajv in strict mode (unknown keywords or formats,
//    unresolvable refs fail), and every example is validated against its
//    schema, so the examples copied from docs/api.md keep the schemas honest.
// 3. Path templates and path parameters agree; operationIds are unique;
//    info, servers and the size fit what the server embeds.
// Prints every error and exits 1 if there is any, 0 otherwise.
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Validator } from "@seriousme/openapi-schema-validator";
import { makeAjv } from "./openapi_ajv.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const MAX_BYTES = 64 * 1024;
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

const errors = [];
const fail = (where, msg) => errors.push(`${where}: ${msg}`);

async function load() {
  const arg = process.argv[2] ?? process.env.FLEETD_HTTP_PORT ?? "";
  if (/^\d+$/.test(arg)) {
    const url = `http://127.0.0.1:${arg}/openapi.json`;
    let res;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(10000) });
    } catch (e) {
      console.error(`validate_openapi: GET ${url}: ${e.cause?.message ?? e.message}`);
      process.exit(2);
    }
    const text = await res.text();
    if (res.status !== 200) fail(url, `status ${res.status}, want 200`);
    const ct = res.headers.get("content-type") ?? "";
    if (!/^application\/json\b/i.test(ct)) fail(url, `Content-Type '${ct}', want application/json`);
    return { where: url, text };
  }
  const file = arg || resolve(ROOT, "src/net/openapi.json");
  return { where: file, text: await readFile(file, "utf8") };
}

// Every Schema Object of the document, with a JSON pointer to it.
function collectSchemas(doc) {
  const out = [];
  const esc = (s) => s.replace(/~/g, "~0").replace(/\//g, "~1");
  const schema = (s, ptr) => s !== undefined && out.push({ ptr, schema: s });
  const mediaMap = (content, ptr) => {
    for (const [type, m] of Object.entries(content ?? {})) {
      const p = `${ptr}/content/${esc(type)}`;
      schema(m.schema, `${p}/schema`);
      if (m.example !== undefined && m.schema)
        out.push({ ptr: `${p}/example`, schema: m.schema, example: m.example, mediaType: type });
      for (const [n, ex] of Object.entries(m.examples ?? {}))
        if (ex.value !== undefined && m.schema)
          out.push({ ptr: `${p}/examples/${esc(n)}`, schema: m.schema, example: ex.value, mediaType: type });
    }
  };
  const param = (pm, ptr) => {
    if (pm.$ref) return;
    schema(pm.schema, `${ptr}/schema`);
    if (pm.example !== undefined && pm.schema)
      out.push({ ptr: `${ptr}/example`, schema: pm.schema, example: pm.example });
    mediaMap(pm.content, ptr);
  };
  const headers = (hs, ptr) => {
    for (const [n, h] of Object.entries(hs ?? {})) if (!h.$ref) param(h, `${ptr}/headers/${esc(n)}`);
  };
  const response = (r, ptr) => {
    if (r.$ref) return;
    headers(r.headers, ptr);
    mediaMap(r.content, ptr);
  };
  const operation = (o, ptr) => {
    (o.parameters ?? []).forEach((pm, i) => param(pm, `${ptr}/parameters/${i}`));
    if (o.requestBody && !o.requestBody.$ref) mediaMap(o.requestBody.content, `${ptr}/requestBody`);
    for (const [code, r] of Object.entries(o.responses ?? {})) response(r, `${ptr}/responses/${esc(code)}`);
  };
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    const ptr = `#/paths/${esc(path)}`;
    (item.parameters ?? []).forEach((pm, i) => param(pm, `${ptr}/parameters/${i}`));
    for (const m of METHODS) if (item[m]) operation(item[m], `${ptr}/${m}`);
  }
  const c = doc.components ?? {};
  for (const [n, s] of Object.entries(c.schemas ?? {})) schema(s, `#/components/schemas/${esc(n)}`);
  for (const [n, pm] of Object.entries(c.parameters ?? {})) param(pm, `#/components/parameters/${esc(n)}`);
  for (const [n, r] of Object.entries(c.responses ?? {})) response(r, `#/components/responses/${esc(n)}`);
  for (const [n, b] of Object.entries(c.requestBodies ?? {})) mediaMap(b.content, `#/components/requestBodies/${esc(n)}`);
  headers(c.headers, "#/components");
  return out;
}

// Schema-level `example` keywords, found inside the collected schemas.
function schemaExamples(s, ptr, out) {
  if (!s || typeof s !== "object") return;
  if (Array.isArray(s)) return s.forEach((x, i) => schemaExamples(x, `${ptr}/${i}`, out));
  if (s.example !== undefined) out.push({ ptr: `${ptr}/example`, schema: s, example: s.example });
  for (const ex of s.examples ?? []) out.push({ ptr: `${ptr}/examples`, schema: s, example: ex });
  for (const [k, v] of Object.entries(s)) if (k !== "example" && k !== "examples" && k !== "const" && k !== "default" && k !== "enum") schemaExamples(v, `${ptr}/${k}`, out);
}

function checkSchemas(doc) {
  let ajv, compileSchema;
  try {
    ({ ajv, compile: compileSchema } = makeAjv(doc));
  } catch (e) {
    fail("document", `Ajv refused the document as a schema root: ${e.message}`);
    return;
  }

  const found = collectSchemas(doc);
  const plain = found.filter((f) => !("example" in f));
  const exs = found.filter((f) => "example" in f);
  for (const f of plain) schemaExamples(f.schema, f.ptr, exs);

  const compiled = new Map();
  const compile = (s, ptr) => {
    if (compiled.has(s)) return compiled.get(s);
    let v = null;
    if (!ajv.validateSchema(s)) {
      fail(ptr, `not a JSON Schema 2020-12 schema: ${ajv.errorsText(ajv.errors)}`);
    } else {
      try {
        const r = compileSchema(s);
        v = r.validate;
        for (const w of r.warnings) fail(ptr, `strict mode: ${w}`);
      } catch (e) {
        fail(ptr, e.message);
      }
    }
    compiled.set(s, v);
    return v;
  };
  for (const f of plain) compile(f.schema, f.ptr);
  for (const f of exs) {
    const v = compile(f.schema, f.ptr.replace(/\/examples?(\/[^/]*)?$/, ""));
    if (!v) continue;
    if (!v(f.example)) {
      fail(f.ptr, `example does not match its schema: ${ajv.errorsText(v.errors, { dataVar: "example" })}`);
      continue;
    }
    if (f.mediaType === "application/x-ndjson") {
      const lines = String(f.example).split("\n").filter((l) => l !== "");
      const line = doc.components?.schemas?.PositionLine;
      const lv = line && compile(line, "#/components/schemas/PositionLine");
      lines.forEach((l, i) => {
        let obj;
        try {
          obj = JSON.parse(l);
        } catch (e) {
          return fail(f.ptr, `line ${i + 1} is not JSON: ${e.message}`);
        }
        if (lv && !lv(obj)) fail(f.ptr, `line ${i + 1}: ${ajv.errorsText(lv.errors, { dataVar: "line" })}`);
      });
    }
    if (f.mediaType === "application/json" || f.mediaType === "application/problem+json") {
      if (typeof f.example === "string") fail(f.ptr, "a JSON example should be a JSON value, not a string");
    }
  }
}

function checkStructure(doc, text) {
  if (Buffer.byteLength(text) >= MAX_BYTES) fail("document", `${Buffer.byteLength(text)} bytes, want < ${MAX_BYTES}`);
  if (doc.openapi !== "3.1.0") fail("openapi", `'${doc.openapi}', want '3.1.0'`);
  if (doc.info?.title !== "fleetd") fail("info.title", `'${doc.info?.title}', want 'fleetd'`);
  if (!/^\d+\.\d+\.\d+$/.test(doc.info?.version ?? "")) fail("info.version", `'${doc.info?.version}' is not x.y.z`);
  if (JSON.stringify(doc.servers) !== JSON.stringify([{ url: "/" }])) fail("servers", `${JSON.stringify(doc.servers)}, want [{"url":"/"}]`);
  const ids = new Map();
  const deref = (p) => {
    if (!p?.$ref) return p;
    const m = /^#\/components\/parameters\/(.+)$/.exec(p.$ref);
    return m ? doc.components?.parameters?.[m[1].replace(/~1/g, "/").replace(/~0/g, "~")] : undefined;
  };
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    if (!path.startsWith("/")) fail(path, "a path must start with /");
    const templ = new Set([...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]));
    const ops = METHODS.filter((m) => item[m]);
    if (ops.length === 0) fail(path, "no operations");
    for (const m of ops) {
      const o = item[m];
      const where = `${m.toUpperCase()} ${path}`;
      if (!o.operationId) fail(where, "no operationId");
      else if (ids.has(o.operationId)) fail(where, `operationId '${o.operationId}' also used by ${ids.get(o.operationId)}`);
      else ids.set(o.operationId, where);
      const params = new Map();
      for (const p of [...(item.parameters ?? []), ...(o.parameters ?? [])].map(deref)) {
        if (!p) continue;
        params.set(`${p.in}:${p.name}`, p);
      }
      for (const name of templ) {
        const p = params.get(`path:${name}`);
        if (!p) fail(where, `path parameter {${name}} is not declared`);
        else if (p.required !== true) fail(where, `path parameter {${name}} must be required`);
      }
      for (const p of params.values())
        if (p.in === "path" && !templ.has(p.name)) fail(where, `path parameter '${p.name}' is not in the path`);
      if (!o.responses || Object.keys(o.responses).length === 0) fail(where, "no responses");
      if (o.requestBody && !o.requestBody.$ref && !o.requestBody.content) fail(where, "requestBody without content");
    }
  }
}

const { where, text } = await load();
let doc;
try {
  doc = JSON.parse(text);
} catch (e) {
  console.error(`validate_openapi: ${where}: not valid JSON: ${e.message}`);
  process.exit(1);
}

const validator = new Validator();
const res = await validator.validate(doc);
if (!res.valid) {
  for (const e of [].concat(res.errors ?? [])) fail("OpenAPI 3.1 schema", typeof e === "string" ? e : JSON.stringify(e));
} else if (validator.version !== "3.1") {
  fail("openapi", `validated as OpenAPI ${validator.version}, want 3.1`);
}
checkStructure(doc, text);
checkSchemas(doc);

const nPaths = Object.keys(doc.paths ?? {}).length;
const nOps = Object.values(doc.paths ?? {}).reduce((n, item) => n + METHODS.filter((m) => item?.[m]).length, 0);
if (errors.length) {
  for (const e of errors) console.error(`  ${e}`);
  console.error(`validate_openapi: ${where}: ${errors.length} error(s)`);
  process.exit(1);
}
console.log(`validate_openapi: ${where}: valid OpenAPI ${doc.openapi} (${nPaths} paths, ${nOps} operations, ${Buffer.byteLength(text)} bytes)`);
