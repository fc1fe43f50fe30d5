#!/usr/bin/env node
// Validates Kubernetes manifests offline, against the Kubernetes schema as the npm package kubernetes-models carries
// it (pinned by tests/k8s/package-lock.json), without a cluster.
//
//   node validate.js --modules DIR [--json-out FILE] MANIFEST.yaml...
//
// DIR holds the node_modules that `npm ci` installed from tests/k8s/package-lock.json. Every YAML document of every
// file is checked: it parses (YAML 1.2, duplicate keys refused), has apiVersion and kind of a model kubernetes-models
// knows, passes that model's schema, and has no field the schema does not name (a typo such as `backofLimitPerIndex`:
// the schema allows unknown fields, and so would a lenient apply, silently dropping them; the API server's strict
// field validation refuses them). Each problem is one line "FILE: KIND NAME: ..."; exit 1 if there is any, 0 and a
// line per document otherwise. --json-out writes the documents, in order, as a JSON array (for checks of their
// meaning in other languages).
"use strict";
const fs = require("fs");
const path = require("path");
const { createRequire } = require("module");

function usage(msg) {
  process.stderr.write(`validate.js: ${msg}\nusage: node validate.js --modules DIR [--json-out FILE] MANIFEST...\n`);
  process.exit(2);
}

let modulesDir = null;
let jsonOut = null;
const files = [];
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === "--modules") modulesDir = argv[++i];
  else if (argv[i] === "--json-out") jsonOut = argv[++i];
  else if (argv[i].startsWith("--")) usage(`unknown option ${argv[i]}`);
  else files.push(argv[i]);
}
if (!modulesDir) usage("--modules DIR is required");
if (files.length === 0) usage("no manifest given");
const req = createRequire(path.join(path.resolve(modulesDir), "package.json"));
const YAML = req("yaml");

// The model of apiVersion/kind: kubernetes-models/<group>/<version> exports one class per kind ("v1" is the core
// group: kubernetes-models/v1).
function modelOf(apiVersion, kind) {
  let mod;
  try {
    mod = req(`kubernetes-models/${apiVersion}`);
  } catch (e) {
    return null;
  }
  const model = mod[kind];
  return typeof model === "function" && typeof model.prototype.validate === "function" ? model : null;
}

// The fields of `doc` that the schema's validator never looked at: the compiled validator reads every property its
// schema names (present or not) and every entry of a map, so an own property it never read is not in the schema.
// The validator runs on proxies of the document that record each read.
function validateTracked(model, doc) {
  const reads = new Map();
  const pathOf = new Map();
  const proxies = new WeakMap();
  const wrap = (value, where) => {
    if (value === null || typeof value !== "object") return value;
    if (!proxies.has(value)) {
      reads.set(value, new Set());
      pathOf.set(value, where);
      proxies.set(
        value,
        new Proxy(value, {
          get(target, key, receiver) {
            const v = Reflect.get(target, key, receiver);
            if (typeof key !== "string" || !Object.prototype.hasOwnProperty.call(target, key)) return v;
            reads.get(target).add(key);
            return wrap(v, `${pathOf.get(target)}/${key}`);
          },
        }),
      );
    }
    return proxies.get(value);
  };
  let schemaError = null;
  try {
    // The model's validate() checks `this` against the schema and throws with every error found.
    model.prototype.validate.call(wrap(doc, ""));
  } catch (e) {
    schemaError = e;
  }
  const unknown = [];
  if (!schemaError) {
    for (const [obj, read] of reads) {
      if (Array.isArray(obj)) continue;
      for (const key of Object.keys(obj)) if (!read.has(key)) unknown.push(`${pathOf.get(obj)}/${key}`);
    }
  }
  return { schemaError, unknown };
}

const problems = [];
const out = [];
for (const file of files) {
  let text;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    problems.push(`${file}: cannot read: ${e.message}`);
    continue;
  }
  const docs = YAML.parseAllDocuments(text, { uniqueKeys: true, prettyErrors: false });
  if (!Array.isArray(docs)) {
    problems.push(`${file}: not a YAML stream`);
    continue;
  }
  docs.forEach((d, n) => {
    const where = `${file}: document ${n + 1}`;
    if (d.errors.length) {
      problems.push(`${where}: YAML: ${d.errors[0].message.split("\n")[0]}`);
      return;
    }
    const doc = d.toJS();
    if (doc === null || doc === undefined) return;
    if (typeof doc !== "object" || Array.isArray(doc)) {
      problems.push(`${where}: not a mapping`);
      return;
    }
    const name = `${doc.kind || "?"} ${(doc.metadata && doc.metadata.name) || "?"}`;
    if (typeof doc.apiVersion !== "string" || typeof doc.kind !== "string") {
      problems.push(`${file}: ${name}: no apiVersion or kind`);
      return;
    }
    const model = modelOf(doc.apiVersion, doc.kind);
    if (!model) {
      problems.push(`${file}: ${name}: ${doc.apiVersion} ${doc.kind} is not a Kubernetes kind kubernetes-models knows`);
      return;
    }
    const { schemaError, unknown } = validateTracked(model, doc);
    if (schemaError) {
      const msg = String(schemaError.message || schemaError).replace(/\s*\n\s*/g, "; ");
      problems.push(`${file}: ${name}: schema: ${msg}`);
      return;
    }
    for (const field of unknown) problems.push(`${file}: ${name}: field ${field} is not in the schema of ${doc.kind}`);
    if (!unknown.length) process.stdout.write(`${file}: ${name} (${doc.apiVersion}): valid\n`);
    out.push(doc);
  });
}
if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify(out, null, 2) + "\n");
for (const p of problems) process.stderr.write(`${p}\n`);
process.exit(problems.length ? 1 : 0);
