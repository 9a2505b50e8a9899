// openapi_ajv.mjs - an Ajv (JSON Schema 2020-12, strict) that knows an
// OpenAPI 3.1 document, shared by validate_openapi.mjs and conformance.mjs.
//
// The document is registered as a schema root under BASE, so the schemas
// inside it can be compiled with their "#/components/..." refs made
// absolute. OpenAPI's formats (int32, int64, float, double) and its extra
// Schema Object keywords (example, discriminator, xml, externalDocs) are
// declared; anything else unknown fails compilation (strict mode).
import Ajv2020 from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";

const addFormats = addFormatsModule.default ?? addFormatsModule;
export const BASE = "https://fleetd.invalid/openapi.json";

export function makeAjv(doc) {
  const warnings = [];
  const ajv = new Ajv2020({
    strict: true,
    // [lon, lat] with an optional altitude is an open tuple on purpose.
    strictTuples: false,
    allowUnionTypes: true,
    allErrors: true,
    logger: { log() {}, warn: (m) => warnings.push(String(m)), error: (m) => warnings.push(String(m)) },
  });
  addFormats(ajv);
  ajv.addFormat("int32", { type: "number", validate: (n) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
  ajv.addFormat("int64", { type: "number", validate: (n) => Number.isInteger(n) });
  ajv.addFormat("float", { type: "number", validate: () => true });
  ajv.addFormat("double", { type: "number", validate: () => true });
  ajv.addVocabulary(["example", "discriminator", "xml", "externalDocs"]);
  // The document's own top-level members, so it can be the root.
  ajv.addVocabulary(["openapi", "info", "jsonSchemaDialect", "servers", "paths", "webhooks", "components", "security", "tags"]);
  ajv.addSchema({ ...doc, $id: BASE }, BASE);

  const absolute = (v) => {
    if (Array.isArray(v)) return v.map(absolute);
    if (!v || typeof v !== "object") return v;
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = k === "$ref" && typeof x === "string" && x.startsWith("#") ? BASE + x : absolute(x);
    return o;
  };
  const cache = new Map();
  // A validator for a Schema Object of the document; throws on a bad
  // schema. Strict-mode warnings are returned, not printed.
  function compile(schema) {
    if (cache.has(schema)) return cache.get(schema);
    warnings.length = 0;
    const v = ajv.compile(absolute(schema));
    const r = { validate: v, warnings: [...warnings] };
    cache.set(schema, r);
    return r;
  }
  return { ajv, compile };
}
