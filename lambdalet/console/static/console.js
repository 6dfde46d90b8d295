// The Lambdalet console: plain JavaScript, no build step, no dependency. Every action is a call to
// the server's Lambda API on this origin, so the console can do only what the API allows, and it
// shows the API's own errors. Every element is built with textContent (never HTML from data).
"use strict";

const FUNCTIONS = "/2015-03-31/functions";
const DEFAULT_ROLE = "arn:aws:iam::000000000000:role/lambda-role";
const STARTERS = {
  python: { file: "lambda_function.py", handler: "lambda_function.lambda_handler",
    code: 'import json\n\n\ndef lambda_handler(event, context):\n    print("event:", json.dumps(event))\n' +
          '    return {"statusCode": 200, "body": json.dumps("Hello from Lambdalet!")}\n' },
  nodejs: { file: "index.mjs", handler: "index.handler",
    code: 'export const handler = async (event) => {\n  console.log("event:", JSON.stringify(event));\n' +
          '  return { statusCode: 200, body: JSON.stringify("Hello from Lambdalet!") };\n};\n' },
};
const RUNTIMES = ["python3.13", "python3.12", "python3.11", "python3.10", "nodejs22.x", "nodejs20.x", "nodejs18.x"];

// -- elements -----------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "value") node.value = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined && child !== false) node.append(child);  // strings become text
  }
  return node;
}

function show(...nodes) {
  const main = document.getElementById("main");
  main.replaceChildren(...nodes);
  return main;
}

function field(label, input, id) {
  input.id = id;
  return el("div", {}, el("label", { for: id }, label), input, el("div", { class: "error", id: `${id}-error`, role: "alert" }));
}

// -- the API ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, type, message) {
    super(message);
    this.status = status;
    this.type = type;
  }
  toString() { return `${this.type}: ${this.message}`; }
}

// -- signing (under --auth iam) -------------------------------------------------------------------
// SigV4 as botocore does it (the server verifies with botocore's canonicalisation): the path
// encoded once more, the query's pairs decoded and encoded again, sorted; host and x-amz-date
// signed. The key is kept in this browser tab's session storage only.

const CREDENTIALS = "lambdalet-console-credentials";
const REGION = document.documentElement.dataset.region || "us-east-1";
const ACCESS_DENIED = ["AccessDeniedException", "AccessDenied"];
const SIGNIN_ERRORS = ["MissingAuthenticationTokenException", "UnrecognizedClientException", "InvalidSignatureException",
  "IncompleteSignatureException", "ExpiredTokenException"];

const credentials = () => JSON.parse(sessionStorage.getItem(CREDENTIALS) || "null");

function quote(text, safe) {  // Python's urllib.parse.quote over UTF-8
  let out = "";
  for (const byte of new TextEncoder().encode(text)) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9_.~-]/.test(c) || safe.includes(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

const hex = (buffer) => [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
const sha256 = async (data) => hex(await crypto.subtle.digest("SHA-256", typeof data === "string" ? new TextEncoder().encode(data) : data));

async function hmac(key, text) {
  const imported = await crypto.subtle.importKey("raw", typeof key === "string" ? new TextEncoder().encode(key) : key,
    { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return crypto.subtle.sign("HMAC", imported, new TextEncoder().encode(text));
}

async function sign(method, path, headers, body, creds) {
  const url = new URL(path, window.location.href);
  const service = (headers["X-Amz-Target"] || "").startsWith("Logs_") ? "logs"
    : /^\/schedule(s|-groups)(\/|$)/.test(url.pathname) ? "scheduler" : "lambda";
  const amzDate = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  const day = amzDate.slice(0, 8);
  const query = url.search.slice(1).split("&").filter(Boolean).map((pair) => {
    const at = pair.indexOf("=");
    const [key, value] = at < 0 ? [pair, ""] : [pair.slice(0, at), pair.slice(at + 1)];
    return [quote(decodeURIComponent(key), ""), quote(decodeURIComponent(value), "")];
  }).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([key, value]) => `${key}=${value}`).join("&");
  const signedHeaders = { host: url.host, "x-amz-date": amzDate, ...(creds.sessionToken ? { "x-amz-security-token": creds.sessionToken } : {}) };
  const names = Object.keys(signedHeaders).sort();
  const canonical = [method, quote(url.pathname, "/"), query, ...names.map((n) => `${n}:${signedHeaders[n]}`), "",
    names.join(";"), await sha256(body === undefined ? "" : body)].join("\n");
  const scope = `${day}/${REGION}/${service}/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, await sha256(canonical)].join("\n");
  let key = await hmac(`AWS4${creds.secretAccessKey}`, day);
  for (const part of [REGION, service, "aws4_request"]) key = await hmac(key, part);
  const signature = hex(await hmac(key, toSign));
  headers["X-Amz-Date"] = amzDate;
  if (creds.sessionToken) headers["X-Amz-Security-Token"] = creds.sessionToken;
  headers.Authorization = `AWS4-HMAC-SHA256 Credential=${creds.accessKeyId}/${scope}, SignedHeaders=${names.join(";")}, Signature=${signature}`;
}

async function api(method, path, body, headers = {}) {
  const init = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    if (!init.headers["Content-Type"]) init.headers["Content-Type"] = "application/json";
  }
  const creds = credentials();
  if (creds) await sign(method, path, init.headers, init.body, creds);
  const response = await fetch(path, init);
  const text = await response.text();
  if (!response.ok) {
    let message = text;
    try {
      const parsed = JSON.parse(text);
      message = parsed.message || parsed.Message || text;
    } catch (_) { /* not JSON: the text itself */ }
    const type = (response.headers.get("x-amzn-ErrorType") || `HTTP ${response.status}`).split(":")[0];
    throw new ApiError(response.status, type, message);
  }
  return { response, text, json: () => (text ? JSON.parse(text) : {}) };
}

const fn = (name) => `${FUNCTIONS}/${encodeURIComponent(name)}`;

/** Wait while the function is Pending or its last update InProgress (as AWS's waiters do), saying so. */
async function settled(name, progress) {
  for (let attempt = 0; attempt < 120; attempt++) {
    const config = (await api("GET", `${fn(name)}/configuration`)).json();
    if (config.State !== "Pending" && config.LastUpdateStatus !== "InProgress") return config;
    progress(config.State === "Pending" ? "The function is being created…" : "The update is in progress…");
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error("The function did not settle within 30 s");
}

// -- zip archives (a deployment package is a zip) ------------------------------------------------

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes) {
  let crc = 0xffffffff;
  for (const byte of bytes) crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** A zip of `files` ({name: Uint8Array}), stored (uncompressed), each file mode 0644. */
function makeZip(files) {
  const encoder = new TextEncoder();
  const locals = [], centrals = [];
  let offset = 0;
  const time = 0, date = (44 << 9) | (1 << 5) | 1;  // 2024-01-01 00:00, like every build of the same code
  for (const [name, data] of Object.entries(files)) {
    const nameBytes = encoder.encode(name), crc = crc32(data);
    const local = new DataView(new ArrayBuffer(30));
    [[0, 0x04034b50, 4], [4, 20, 2], [6, 0x0800, 2], [8, 0, 2], [10, time, 2], [12, date, 2], [14, crc, 4],
     [18, data.length, 4], [22, data.length, 4], [26, nameBytes.length, 2], [28, 0, 2]]
      .forEach(([at, value, size]) => (size === 4 ? local.setUint32(at, value, true) : local.setUint16(at, value, true)));
    const central = new DataView(new ArrayBuffer(46));
    [[0, 0x02014b50, 4], [4, (3 << 8) | 20, 2], [6, 20, 2], [8, 0x0800, 2], [10, 0, 2], [12, time, 2], [14, date, 2],
     [16, crc, 4], [20, data.length, 4], [24, data.length, 4], [28, nameBytes.length, 2], [30, 0, 2], [32, 0, 2],
     [34, 0, 2], [36, 0, 2], [38, (0o100644 << 16) >>> 0, 4], [42, offset, 4]]
      .forEach(([at, value, size]) => (size === 4 ? central.setUint32(at, value, true) : central.setUint16(at, value, true)));
    locals.push(new Uint8Array(local.buffer), nameBytes, data);
    centrals.push(new Uint8Array(central.buffer), nameBytes);
    offset += 30 + nameBytes.length + data.length;
  }
  const centralSize = centrals.reduce((sum, part) => sum + part.length, 0);
  const end = new DataView(new ArrayBuffer(22));
  const count = Object.keys(files).length;
  [[0, 0x06054b50, 4], [4, 0, 2], [6, 0, 2], [8, count, 2], [10, count, 2], [12, centralSize, 4], [16, offset, 4], [20, 0, 2]]
    .forEach(([at, value, size]) => (size === 4 ? end.setUint32(at, value, true) : end.setUint16(at, value, true)));
  const parts = [...locals, ...centrals, new Uint8Array(end.buffer)];
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) { out.set(part, at); at += part.length; }
  return out;
}

/** The files of a zip ({name: Uint8Array}), stored or deflated, read from its central directory. */
async function readZip(buffer) {
  const view = new DataView(buffer), bytes = new Uint8Array(buffer), decoder = new TextDecoder();
  let end = buffer.byteLength - 22;
  while (end >= 0 && view.getUint32(end, true) !== 0x06054b50) end--;
  if (end < 0) throw new Error("not a zip archive");
  const count = view.getUint16(end + 10, true);
  let at = view.getUint32(end + 16, true);
  const files = {};
  for (let i = 0; i < count; i++) {
    const method = view.getUint16(at + 10, true), size = view.getUint32(at + 20, true);
    const nameLength = view.getUint16(at + 28, true), extra = view.getUint16(at + 30, true);
    const comment = view.getUint16(at + 32, true), local = view.getUint32(at + 42, true);
    const name = decoder.decode(bytes.subarray(at + 46, at + 46 + nameLength));
    at += 46 + nameLength + extra + comment;
    if (name.endsWith("/")) continue;
    const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    const raw = bytes.subarray(start, start + size);
    if (method === 0) files[name] = raw.slice();
    else if (method === 8) {
      const stream = new Blob([raw]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
      files[name] = new Uint8Array(await new Response(stream).arrayBuffer());
    } else throw new Error(`${name}: compression method ${method} is not supported here`);
  }
  return files;
}

function base64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

function fromBase64Text(text) {
  const binary = atob(text);
  return new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
}

const isText = (bytes) => bytes.length < 512 * 1024 && !bytes.includes(0);

// -- pages --------------------------------------------------------------------------------------

async function listPage() {
  const search = el("input", { type: "search", id: "search", placeholder: "Filter by name", "aria-label": "Filter functions by name" });
  const body = el("tbody");
  const more = el("button", { class: "secondary", hidden: true }, "Load more");
  const status = el("p", { class: "muted", role: "status" });
  const table = el("table", {},
    el("thead", {}, el("tr", {}, ["Function name", "Runtime", "Memory (MB)", "Last modified", "Description"].map((h) => el("th", { scope: "col" }, h)))),
    body);
  const filter = () => {
    const needle = search.value.trim().toLowerCase();
    let shown = 0;
    for (const row of body.rows) {
      row.hidden = !row.dataset.name.toLowerCase().includes(needle);
      if (!row.hidden) shown++;
    }
    status.textContent = `${shown} of ${body.rows.length} loaded function(s) shown`;
  };
  search.addEventListener("input", filter);
  let marker = null;
  const load = async () => {
    more.disabled = true;
    const query = new URLSearchParams({ MaxItems: "50" });
    if (marker) query.set("Marker", marker);
    const listed = (await api("GET", `${FUNCTIONS}/?${query}`)).json();
    for (const config of listed.Functions || []) {
      const row = el("tr", {},
        el("td", {}, el("a", { href: `#/functions/${encodeURIComponent(config.FunctionName)}` }, config.FunctionName)),
        el("td", {}, config.Runtime || config.PackageType || ""),
        el("td", {}, String(config.MemorySize ?? "")),
        el("td", {}, config.LastModified || ""),
        el("td", {}, config.Description || ""));
      row.dataset.name = config.FunctionName;
      body.append(row);
    }
    marker = listed.NextMarker || null;
    more.hidden = !marker;
    more.disabled = false;
    filter();
  };
  more.addEventListener("click", () => load().catch(showError));
  show(el("h1", {}, "Functions"),
    el("div", { class: "toolbar" }, search, el("button", { onclick: () => { location.hash = "#/create"; } }, "Create function")),
    status, table, more);
  await load();
}

function createPage() {
  const name = el("input", { type: "text", required: true, autocomplete: "off" });
  const source = el("select", {}, [["editor", "Author from scratch (inline editor)"], ["zip", "Upload a .zip file"],
    ["s3", "A .zip in an S3 bucket"], ["image", "A container image"]].map(([value, label]) => el("option", { value }, label)));
  const runtime = el("select", {}, RUNTIMES.map((r) => el("option", { value: r }, r)));
  const role = el("input", { type: "text", value: DEFAULT_ROLE });
  const code = el("textarea", { spellcheck: "false" });
  const upload = el("input", { type: "file", accept: ".zip,application/zip" });
  const handler = el("input", { type: "text" });
  const bucket = el("input", { type: "text", autocomplete: "off" });
  const key = el("input", { type: "text", autocomplete: "off" });
  const imageUri = el("input", { type: "text", autocomplete: "off", placeholder: "registry.example:5000/repository:tag" });
  const starter = () => STARTERS[runtime.value.startsWith("python") ? "python" : "nodejs"];
  code.value = starter().code;
  handler.value = starter().handler;
  runtime.addEventListener("change", () => { code.value = starter().code; handler.value = starter().handler; });
  const parts = {
    runtime: field("Runtime", runtime, "runtime"), code: field("Code", code, "code"),
    upload: field("Deployment package (.zip)", upload, "upload"), handler: field("Handler", handler, "handler"),
    bucket: field("S3 bucket", bucket, "s3-bucket"), key: field("S3 key", key, "s3-key"),
    image: field("Image URI", imageUri, "image-uri"),
  };
  const shown = { editor: ["runtime", "code"], zip: ["runtime", "handler", "upload"], s3: ["runtime", "handler", "bucket", "key"],
    image: ["image"] };
  const arrange = () => {
    for (const [part, node] of Object.entries(parts)) node.hidden = !shown[source.value].includes(part);
  };
  source.addEventListener("change", arrange);
  arrange();
  const error = el("div", { class: "error", role: "alert" });
  const create = el("button", { type: "submit" }, "Create function");
  const form = el("form", { novalidate: true },
    field("Function name", name, "function-name"), field("Code source", source, "code-source-kind"),
    Object.values(parts), field("Execution role", role, "role"), error, create);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    create.disabled = true;
    create.textContent = "Creating…";
    try {
      const request = { FunctionName: name.value.trim(), Role: role.value.trim() };
      if (source.value === "image") {
        Object.assign(request, { PackageType: "Image", Code: { ImageUri: imageUri.value.trim() } });
      } else {
        Object.assign(request, { Runtime: runtime.value, Handler: source.value === "editor" ? starter().handler : handler.value.trim() });
        if (source.value === "editor") {
          request.Code = { ZipFile: base64(makeZip({ [starter().file]: new TextEncoder().encode(code.value) })) };
        } else if (source.value === "zip") {
          if (!upload.files.length) throw new Error("Choose a .zip file to upload.");
          request.Code = { ZipFile: base64(new Uint8Array(await upload.files[0].arrayBuffer())) };
        } else {
          request.Code = { S3Bucket: bucket.value.trim(), S3Key: key.value.trim() };
        }
      }
      await api("POST", `${FUNCTIONS}`, request);
      await settled(name.value.trim(), (text) => { create.textContent = text; });
      location.hash = `#/functions/${encodeURIComponent(name.value.trim())}`;
    } catch (e) {
      error.textContent = String(e);
    } finally {
      create.disabled = false;
      create.textContent = "Create function";
    }
  });
  show(el("h1", {}, "Create function"), form);
  name.focus();
}

async function functionPage(name, tab) {
  const got = (await api("GET", fn(name))).json();
  const config = got.Configuration;
  const tabs = ["code", "test", "monitor", "configuration", "versions", "url", "concurrency", "asynchronous", "triggers", "logs"];
  const titles = { url: "Function URL", asynchronous: "Asynchronous invocation" };
  const current = tabs.includes(tab) ? tab : "code";
  const remove = el("button", { class: "danger" }, "Delete");
  remove.addEventListener("click", async () => {
    if (!confirm(`Delete the function ${name}? This cannot be undone.`)) return;
    try {
      await api("DELETE", fn(name));
      location.hash = "#/";
    } catch (e) { showError(e); }
  });
  const nav = el("nav", { class: "tabs", "aria-label": "Function" }, tabs.map((t) => el("a", {
    href: `#/functions/${encodeURIComponent(name)}/${t}`, "aria-current": t === current ? "page" : false }, titles[t] || t[0].toUpperCase() + t.slice(1))));
  const panel = el("section");
  show(el("h1", {}, name), el("p", { class: "muted" }, config.FunctionArn), remove, nav, panel);
  if (current === "code") await codeTab(panel, name, got);
  else if (current === "test") await testTab(panel, name);
  else if (current === "versions") await versionsTab(panel, name);
  else if (current === "logs") logsTab(panel, name, config);
  else if (current === "monitor") monitorTab(panel, name);
  else if (current === "url") await urlTab(panel, name);
  else if (current === "concurrency") await concurrencyTab(panel, name);
  else if (current === "asynchronous") await asyncTab(panel, name);
  else if (current === "triggers") await triggersTab(panel, name);
  else configurationTab(panel, name, config);
}

async function versionsTab(panel, name) {
  const [versions, aliases] = await Promise.all([
    api("GET", `${fn(name)}/versions?MaxItems=50`).then((r) => r.json().Versions || []),
    api("GET", `${fn(name)}/aliases?MaxItems=50`).then((r) => r.json().Aliases || [])]);
  const published = versions.filter((v) => v.Version !== "$LATEST");
  const description = el("input", { type: "text" });
  const publish = el("button", {}, "Publish new version");
  const publishResult = el("div", { role: "status" });
  publish.addEventListener("click", async () => {
    publish.disabled = true;
    try {
      const version = (await api("POST", `${fn(name)}/versions`, { Description: description.value })).json();
      panel.replaceChildren();
      await versionsTab(panel, name);
      panel.append(el("p", { class: "ok", role: "status" }, `Published version ${version.Version}.`));
    } catch (e) {
      publishResult.replaceChildren(el("span", { class: "error" }, String(e)));
    } finally { publish.disabled = false; }
  });
  const versionRows = published.map((v) => el("tr", {}, el("td", {}, v.Version), el("td", {}, v.Description || ""),
    el("td", {}, v.CodeSha256), el("td", {}, v.LastModified)));
  const aliasRows = aliases.map((a) => {
    const weights = Object.entries(((a.RoutingConfig || {}).AdditionalVersionWeights) || {});
    return el("tr", {}, el("td", {}, a.Name), el("td", {}, a.FunctionVersion),
      el("td", {}, weights.map(([v, w]) => `${v}: ${Math.round(w * 100)}%`).join(", ")), el("td", {}, a.Description || ""));
  });
  const options = () => ["$LATEST", ...published.map((v) => v.Version)].map((v) => el("option", { value: v }, v));
  const aliasName = el("input", { type: "text", autocomplete: "off" });
  const aliasVersion = el("select", {}, options());
  const extraVersion = el("select", {}, el("option", { value: "" }, "(none)"), published.map((v) => el("option", { value: v.Version }, v.Version)));
  const extraWeight = el("input", { type: "number", min: 0, max: 100, value: 0 });
  const aliasError = el("div", { class: "error", role: "alert" });
  const createAlias = el("button", {}, "Create or update alias");
  createAlias.addEventListener("click", async () => {
    aliasError.textContent = "";
    const body = { FunctionVersion: aliasVersion.value };
    body.RoutingConfig = { AdditionalVersionWeights: extraVersion.value ? { [extraVersion.value]: Number(extraWeight.value) / 100 } : {} };
    createAlias.disabled = true;
    try {
      const exists = aliases.some((a) => a.Name === aliasName.value.trim());
      if (exists) await api("PUT", `${fn(name)}/aliases/${encodeURIComponent(aliasName.value.trim())}`, body);
      else await api("POST", `${fn(name)}/aliases`, { Name: aliasName.value.trim(), ...body });
      panel.replaceChildren();
      await versionsTab(panel, name);
    } catch (e) {
      aliasError.textContent = String(e);
    } finally { createAlias.disabled = false; }
  });
  panel.append(
    el("h2", {}, "Versions"),
    el("table", {}, el("thead", {}, el("tr", {}, ["Version", "Description", "Code SHA-256", "Last modified"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, versionRows.length ? versionRows : el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No published version yet.")))),
    field("Description of the new version", description, "version-description"), publish, publishResult,
    el("h2", {}, "Aliases"),
    el("table", {}, el("thead", {}, el("tr", {}, ["Alias", "Version", "Weighted routing", "Description"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, aliasRows.length ? aliasRows : el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No alias yet.")))),
    field("Alias name", aliasName, "alias-name"), field("Version", aliasVersion, "alias-version"),
    field("Additional version (weighted routing)", extraVersion, "alias-extra-version"),
    field("Weight of the additional version (%)", extraWeight, "alias-extra-weight"), aliasError, createAlias);
}

/** GET that answers null for a 404 (a setting the function does not have). */
async function optional(path) {
  try {
    return (await api("GET", path)).json();
  } catch (e) {
    if (e.status === 404) return null;
    throw e;
  }
}

function definitions(rows) {
  return el("dl", { class: "config" }, rows.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v ?? "")]));
}

function rerender(panel, tab, ...args) {
  return async () => { panel.replaceChildren(); await tab(panel, ...args); };
}

function urlSettings(url) {
  // The URL's auth type, invoke mode and whole CORS configuration, as CreateFunctionUrlConfig and
  // UpdateFunctionUrlConfig take them (an update replaces Cors as a whole, as on AWS).
  const cors = (url && url.Cors) || {};
  const list = (values) => (values || []).join(", ");
  const split = (input) => input.value.split(",").map((v) => v.trim()).filter(Boolean);
  const auth = el("select", {}, ["NONE", "AWS_IAM"].map((a) => el("option", { value: a }, a)));
  const mode = el("select", {}, ["BUFFERED", "RESPONSE_STREAM"].map((m) => el("option", { value: m }, m)));
  auth.value = (url && url.AuthType) || "NONE";
  mode.value = (url && url.InvokeMode) || "BUFFERED";
  const origins = el("input", { type: "text", value: list(cors.AllowOrigins), placeholder: "https://example.com, https://other.example" });
  const methods = el("input", { type: "text", value: list(cors.AllowMethods), placeholder: "GET, POST (or *)" });
  const headers = el("input", { type: "text", value: list(cors.AllowHeaders), placeholder: "content-type, x-custom" });
  const expose = el("input", { type: "text", value: list(cors.ExposeHeaders), placeholder: "x-request-id" });
  const maxAge = el("input", { type: "number", min: "0", max: "86400", value: cors.MaxAge ?? "" });
  const credentials = el("input", { type: "checkbox" });
  credentials.checked = Boolean(cors.AllowCredentials);
  const fields = [field("Auth type", auth, "url-auth"), field("Invoke mode", mode, "url-mode"),
    field("CORS allowed origins (comma-separated)", origins, "url-origins"),
    field("CORS allowed methods", methods, "url-methods"), field("CORS allowed headers", headers, "url-headers"),
    field("CORS exposed headers", expose, "url-expose"), field("CORS max age (seconds)", maxAge, "url-max-age"),
    field("CORS allow credentials", credentials, "url-credentials")];
  const body = () => {
    const wanted = { AllowOrigins: split(origins), AllowMethods: split(methods), AllowHeaders: split(headers),
      ExposeHeaders: split(expose) };
    const corsBody = Object.fromEntries(Object.entries(wanted).filter(([, v]) => v.length));
    if (maxAge.value !== "") corsBody.MaxAge = Number(maxAge.value);
    if (credentials.checked) corsBody.AllowCredentials = true;
    return { AuthType: auth.value, InvokeMode: mode.value, Cors: corsBody };
  };
  return { fields, body };
}

async function urlTab(panel, name) {
  const path = `/2021-10-31/functions/${encodeURIComponent(name)}/url`;
  const url = await optional(path);
  const status = el("div", { role: "status" });
  const act = (method, body) => async () => {
    try {
      await api(method, path, body);
      await rerender(panel, urlTab, name)();
    } catch (e) { status.replaceChildren(el("span", { class: "error" }, String(e))); }
  };
  panel.append(el("h2", {}, "Function URL"));
  const settings = urlSettings(url);
  if (!url) {
    const create = el("button", {}, "Create function URL");
    create.addEventListener("click", () => {
      const body = settings.body();
      if (!Object.keys(body.Cors).length) delete body.Cors;  // no CORS configuration at all
      act("POST", body)();
    });
    panel.append(el("p", { class: "muted" }, "This function has no URL."), ...settings.fields, create, status);
    return;
  }
  const copy = el("button", { class: "secondary" }, "Copy URL");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(url.FunctionUrl);
      status.replaceChildren(el("span", { class: "ok" }, "Copied."));
    } catch (_) { status.replaceChildren(el("span", { class: "muted" }, "Select the URL to copy it.")); }
  });
  const remove = el("button", { class: "danger" }, "Delete function URL");
  remove.addEventListener("click", () => { if (confirm("Delete the function URL?")) act("DELETE")(); });
  const save = el("button", {}, "Save URL settings");
  save.addEventListener("click", () => act("PUT", settings.body())());
  panel.append(definitions([["URL", el("a", { href: url.FunctionUrl, target: "_blank", rel: "noopener noreferrer", id: "function-url" }, url.FunctionUrl)],
    ["Auth type", url.AuthType], ["Invoke mode", url.InvokeMode || "BUFFERED"],
    ["CORS allowed origins", ((url.Cors || {}).AllowOrigins || []).join(", ")], ["Created", url.CreationTime],
    ["Last modified", url.LastModifiedTime]]),
    copy, remove, el("h3", {}, "Settings"), ...settings.fields, save, status);
}

async function concurrencyTab(panel, name) {
  const reserved = (await api("GET", `/2019-09-30/functions/${encodeURIComponent(name)}/concurrency`)).json();
  const account = (await api("GET", "/2016-08-19/account-settings")).json();
  const provisioned = (await api("GET", `/2019-09-30/functions/${encodeURIComponent(name)}/provisioned-concurrency?List=ALL`)).json();
  const value = el("input", { type: "number", min: 0, value: reserved.ReservedConcurrentExecutions ?? "" });
  const status = el("div", { role: "status" });
  const save = el("button", {}, "Save reserved concurrency");
  save.addEventListener("click", async () => {
    try {
      if (value.value === "") await api("DELETE", `/2017-10-31/functions/${encodeURIComponent(name)}/concurrency`);
      else await api("PUT", `/2017-10-31/functions/${encodeURIComponent(name)}/concurrency`, { ReservedConcurrentExecutions: Number(value.value) });
      await rerender(panel, concurrencyTab, name)();
    } catch (e) { status.replaceChildren(el("span", { class: "error" }, String(e))); }
  });
  const qualifier = el("input", { type: "text", placeholder: "a version or an alias" });
  const amount = el("input", { type: "number", min: 1 });
  const provision = el("button", {}, "Save provisioned concurrency");
  const provisionStatus = el("div", { role: "status" });
  provision.addEventListener("click", async () => {
    const q = encodeURIComponent(qualifier.value.trim());
    try {
      await api("PUT", `/2019-09-30/functions/${encodeURIComponent(name)}/provisioned-concurrency?Qualifier=${q}`,
        { ProvisionedConcurrentExecutions: Number(amount.value) });
      for (let i = 0; i < 240; i++) {  // IN_PROGRESS until its environments are initialised
        const got = (await api("GET", `/2019-09-30/functions/${encodeURIComponent(name)}/provisioned-concurrency?Qualifier=${q}`)).json();
        provisionStatus.replaceChildren(el("span", { class: got.Status === "FAILED" ? "error" : "muted" },
          `${got.Status}: ${got.AllocatedProvisionedConcurrentExecutions} of ${got.RequestedProvisionedConcurrentExecutions} ready${got.StatusReason ? ` (${got.StatusReason})` : ""}`));
        if (got.Status !== "IN_PROGRESS") break;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      await rerender(panel, concurrencyTab, name)();
    } catch (e) { provisionStatus.replaceChildren(el("span", { class: "error" }, String(e))); }
  });
  const rows = (provisioned.ProvisionedConcurrencyConfigs || []).map((c) => el("tr", {},
    el("td", {}, c.FunctionArn.split(":").pop()), el("td", {}, String(c.RequestedProvisionedConcurrentExecutions)),
    el("td", {}, String(c.AllocatedProvisionedConcurrentExecutions)), el("td", {}, c.Status)));
  panel.append(el("h2", {}, "Reserved concurrency"),
    definitions([["Account limit", account.AccountLimit.ConcurrentExecutions], ["Unreserved", account.AccountLimit.UnreservedConcurrentExecutions]]),
    field("Reserved concurrent executions (empty: none)", value, "reserved"), save, status,
    el("h2", {}, "Provisioned concurrency"),
    el("table", {}, el("thead", {}, el("tr", {}, ["Qualifier", "Requested", "Allocated", "Status"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 4, class: "muted" }, "None.")))),
    field("Qualifier", qualifier, "provisioned-qualifier"), field("Provisioned concurrent executions", amount, "provisioned-amount"),
    provision, provisionStatus);
}

async function asyncTab(panel, name) {
  const path = `/2019-09-25/functions/${encodeURIComponent(name)}/event-invoke-config`;
  const config = (await optional(path)) || {};
  const destinations = config.DestinationConfig || {};
  const retries = el("select", {}, [0, 1, 2].map((n) => el("option", { value: n }, String(n))));
  retries.value = String(config.MaximumRetryAttempts ?? 2);
  const age = el("input", { type: "number", min: 60, max: 21600, value: config.MaximumEventAgeInSeconds ?? 21600 });
  const onSuccess = el("input", { type: "text", value: (destinations.OnSuccess || {}).Destination || "" });
  const onFailure = el("input", { type: "text", value: (destinations.OnFailure || {}).Destination || "" });
  const status = el("div", { role: "status" });
  const save = el("button", {}, "Save asynchronous configuration");
  save.addEventListener("click", async () => {
    status.replaceChildren();
    try {
      await api("PUT", path, { MaximumRetryAttempts: Number(retries.value), MaximumEventAgeInSeconds: Number(age.value),
        DestinationConfig: { OnSuccess: { Destination: onSuccess.value.trim() }, OnFailure: { Destination: onFailure.value.trim() } } });
      status.replaceChildren(el("span", { class: "ok" }, "Saved."));
    } catch (e) { status.replaceChildren(el("span", { class: "error" }, String(e))); }
  });
  panel.append(el("h2", {}, "Asynchronous invocation"), field("Retry attempts", retries, "async-retries"),
    field("Maximum age of event (seconds)", age, "async-age"),
    field("On-success destination ARN (SQS, SNS, EventBridge, Lambda)", onSuccess, "async-success"),
    field("On-failure destination ARN (SQS, SNS, EventBridge, Lambda, S3)", onFailure, "async-failure"), save, status);
}

/**
 * The form that changes one mapping's settings (UpdateEventSourceMapping), filled with its current
 * values. It sends only what changed; clearing the filters sends `{"Filters": []}` and turning item
 * failures off an empty FunctionResponseTypes, as Lambda takes them. Streams (Kinesis, DynamoDB) have
 * their own members too; SQS refuses those, so its form does not show them.
 */
function mappingEditor(m, saved) {
  const stream = (m.EventSourceArn || "").split(":")[2] !== "sqs";
  const prefix = `mapping-${m.UUID}`;
  const patternsOf = (text) => text.split("\n").map((line) => line.trim()).filter(Boolean);
  const number = (value, attrs) => el("input", { type: "number", ...attrs, value: value ?? "" });
  const checkbox = (checked) => { const box = el("input", { type: "checkbox" }); box.checked = Boolean(checked); return box; };
  const current = (box) => (box.type === "checkbox" ? box.checked : box.value);
  const whole = (box, label) => {  // a number field's value, or why not
    if (!/^-?\d+$/.test(box.value.trim())) throw Object.assign(new Error(`${label}: enter a whole number.`), { box });
    return Number(box.value);
  };
  const filters = el("textarea", { rows: 3, spellcheck: "false", placeholder: '{"body": {"kind": ["order"]}}' });
  filters.value = ((m.FilterCriteria || {}).Filters || []).map((f) => f.Pattern).join("\n");
  // Each setting: its id, label, input, the member name the API's messages use (a refusal goes beside
  // its field), and how it reads back into the request.
  const settings = [
    ["batch", "Batch size", number(m.BatchSize, { min: 1, max: 10000 }), "batchsize",
      (box) => ({ BatchSize: whole(box, "Batch size") })],
    ["window", "Batching window (seconds)", number(m.MaximumBatchingWindowInSeconds, { min: 0, max: 300 }),
      "maximumbatchingwindowinseconds", (box) => ({ MaximumBatchingWindowInSeconds: whole(box, "Batching window") })],
    ["filters", "Filter patterns (one JSON pattern per line)", filters, "filter",
      (box) => ({ FilterCriteria: { Filters: patternsOf(box.value).map((pattern) => ({ Pattern: pattern })) } })],
    ["item-failures", "Report batch item failures", checkbox((m.FunctionResponseTypes || []).includes("ReportBatchItemFailures")),
      "functionresponsetypes", (box) => ({ FunctionResponseTypes: box.checked ? ["ReportBatchItemFailures"] : [] })],
  ];
  if (stream) {
    const target = ((m.DestinationConfig || {}).OnFailure || {}).Destination || "";
    settings.push(
      ["on-failure", "On-failure destination ARN", el("input", { type: "text", autocomplete: "off", value: target,
        placeholder: "arn:aws:sqs:… (empty: none)" }), "destination",
      (box) => ({ DestinationConfig: { OnFailure: box.value.trim() ? { Destination: box.value.trim() } : {} } })],
      ["retries", "Maximum retry attempts (-1: until the record expires)", number(m.MaximumRetryAttempts, { min: -1, max: 10000 }),
        "maximumretryattempts", (box) => ({ MaximumRetryAttempts: whole(box, "Maximum retry attempts") })],
      ["bisect", "Split the batch on a function error", checkbox(m.BisectBatchOnFunctionError), "bisectbatchonfunctionerror",
        (box) => ({ BisectBatchOnFunctionError: box.checked })],
      ["parallelization", "Concurrent batches per shard (parallelization factor)",
        number(m.ParallelizationFactor, { min: 1, max: 10 }), "parallelizationfactor", (box) => ({ ParallelizationFactor: whole(box, "Parallelization factor") })]);
  }
  const before = new Map(settings.map(([, , box]) => [box, current(box)]));
  before.set(filters, patternsOf(filters.value).join("\n"));  // blank lines and spaces are no change
  const changed = (box) => (box === filters ? patternsOf(box.value).join("\n") : current(box)) !== before.get(box);
  const heading = el("h3", { id: `${prefix}-heading` }, `Settings of the mapping from ${m.EventSourceArn || m.UUID}`);
  const error = el("div", { class: "error", role: "alert" });
  const done = el("div", { role: "status" });
  const save = el("button", { type: "submit" }, "Save mapping settings");
  const cancel = el("button", { type: "button", class: "secondary" }, "Cancel");
  const form = el("form", { novalidate: true, id: `${prefix}-form`, "aria-labelledby": heading.id }, heading,
    settings.map(([id, label, box]) => field(label, box, `${prefix}-${id}`)), error, save, cancel, done);
  const row = el("tr", { class: "editor", hidden: true }, el("td", { colspan: 8 }, form));
  const edit = el("button", { type: "button", class: "secondary", "aria-expanded": "false", "aria-controls": form.id }, "Edit");
  const open = (shown) => {
    row.hidden = !shown;
    edit.setAttribute("aria-expanded", String(shown));
    (shown ? settings[0][2] : edit).focus();
  };
  edit.addEventListener("click", () => open(row.hidden));
  cancel.addEventListener("click", () => {
    for (const [box, value] of before) if (box !== filters) box[box.type === "checkbox" ? "checked" : "value"] = value;
    filters.value = ((m.FilterCriteria || {}).Filters || []).map((f) => f.Pattern).join("\n");
    open(false);
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const [id] of settings) document.getElementById(`${prefix}-${id}-error`).textContent = "";
    error.textContent = "";
    done.replaceChildren();
    const request = {};  // only what changed: an unchanged setting is not sent again
    try {
      for (const [, , box, , read] of settings) if (changed(box)) Object.assign(request, read(box));
    } catch (e) {
      const at = settings.find(([, , box]) => box === e.box);
      (at ? document.getElementById(`${prefix}-${at[0]}-error`) : error).textContent = e.message;
      return;
    }
    if (!Object.keys(request).length) { done.replaceChildren(el("span", { class: "muted" }, "Nothing changed.")); return; }
    save.disabled = true;
    try {
      const answer = (await api("PUT", `/2015-03-31/event-source-mappings/${encodeURIComponent(m.UUID)}`, request)).json();
      await saved(m.UUID,
        `Saved the settings of the mapping from ${answer.EventSourceArn || m.EventSourceArn} (${answer.State}).`);
    } catch (e) {
      // Lambda names the member it refuses ('batchSize', 'maximumRetryAttempts'): its message goes beside that field.
      const text = e.message.toLowerCase().replace(/[^a-z]/g, "");
      const match = settings.find(([, , , member]) => text.includes(member));
      (match ? document.getElementById(`${prefix}-${match[0]}-error`) : error).textContent = String(e);
    } finally { save.disabled = false; }
  });
  return { edit, row };
}

async function triggersTab(panel, name, notice = null) {
  const listed = (await api("GET", `/2015-03-31/event-source-mappings?FunctionName=${encodeURIComponent(name)}`)).json();
  const status = el("div", { role: "status" });
  // after an edit: the page redrawn from the API, the outcome said and the focus back on that mapping's Edit
  const saved = (uuid, text) => rerender(panel, triggersTab, name, { uuid, text })();
  let refocus = null;
  const rows = (listed.EventSourceMappings || []).flatMap((m) => {
    const toggle = el("button", { class: "secondary" }, m.State === "Enabled" ? "Disable" : "Enable");
    toggle.addEventListener("click", async () => {
      try {
        await api("PUT", `/2015-03-31/event-source-mappings/${encodeURIComponent(m.UUID)}`, { Enabled: m.State !== "Enabled" });
        await rerender(panel, triggersTab, name)();
      } catch (e) { status.replaceChildren(el("span", { class: "error" }, String(e))); }
    });
    const filters = ((m.FilterCriteria || {}).Filters || []).map((f) => f.Pattern).join("\n");
    const editor = mappingEditor(m, saved);
    if (notice && notice.uuid === m.UUID) refocus = editor.edit;
    return [el("tr", {}, el("td", {}, m.EventSourceArn || ""), el("td", {}, m.State), el("td", {}, String(m.BatchSize ?? "")),
      el("td", {}, String(m.MaximumBatchingWindowInSeconds ?? "")), el("td", {}, el("code", {}, filters)),
      el("td", {}, m.LastProcessingResult || ""), el("td", {}, m.UUID), el("td", {}, toggle, editor.edit)),
    editor.row];
  });
  const source = el("input", { type: "text", autocomplete: "off", placeholder: "arn:aws:sqs:…, arn:aws:kinesis:… or a DynamoDB stream ARN" });
  const batch = el("input", { type: "number", min: 1, max: 10000, placeholder: "(the source's default)" });
  const position = el("select", {}, ["", "TRIM_HORIZON", "LATEST"].map((p) => el("option", { value: p }, p || "(none: SQS)")));
  const window_ = el("input", { type: "number", min: 0, max: 300, placeholder: "(the source's default)" });
  const filters = el("textarea", { rows: 3, spellcheck: "false", placeholder: '{"body": {"kind": ["order"]}}' });
  const itemFailures = el("input", { type: "checkbox" });
  const onFailure = el("input", { type: "text", autocomplete: "off", placeholder: "arn:aws:sqs:… (streams)" });
  const retries = el("input", { type: "number", min: -1, max: 10000, placeholder: "(streams: -1, forever)" });
  const bisect = el("input", { type: "checkbox" });
  const create = el("button", {}, "Add event source mapping");
  const createStatus = el("div", { role: "status" });
  create.addEventListener("click", async () => {
    createStatus.replaceChildren();
    const body = { FunctionName: name, EventSourceArn: source.value.trim() };
    if (batch.value) body.BatchSize = Number(batch.value);
    if (position.value) body.StartingPosition = position.value;
    if (window_.value) body.MaximumBatchingWindowInSeconds = Number(window_.value);
    // one pattern per line, each sent as Lambda takes it: a JSON text the server checks
    const patterns = filters.value.split("\n").map((line) => line.trim()).filter(Boolean);
    if (patterns.length) body.FilterCriteria = { Filters: patterns.map((pattern) => ({ Pattern: pattern })) };
    if (itemFailures.checked) body.FunctionResponseTypes = ["ReportBatchItemFailures"];
    if (onFailure.value.trim()) body.DestinationConfig = { OnFailure: { Destination: onFailure.value.trim() } };
    if (retries.value) body.MaximumRetryAttempts = Number(retries.value);
    if (bisect.checked) body.BisectBatchOnFunctionError = true;
    try {
      await api("POST", "/2015-03-31/event-source-mappings", body);
      await rerender(panel, triggersTab, name)();
    } catch (e) { createStatus.replaceChildren(el("span", { class: "error" }, String(e))); }
  });
  // Schedules (EventBridge Scheduler on this server) whose target is this function, or one of its versions or aliases.
  const arn = (await api("GET", `${fn(name)}/configuration`)).json().FunctionArn;
  const schedules = [];
  let token;
  for (let page = 0; page < 10; page++) {
    const query = new URLSearchParams({ MaxResults: "100", ...(token ? { NextToken: token } : {}) });
    const listed = (await api("GET", `/schedules?${query}`)).json();
    schedules.push(...(listed.Schedules || []).filter((item) => (item.Target || {}).Arn === arn || ((item.Target || {}).Arn || "").startsWith(`${arn}:`)));
    token = listed.NextToken;
    if (!token) break;
  }
  const scheduleRows = schedules.map((item) => el("tr", {}, el("td", {}, item.Name), el("td", {}, item.GroupName),
    el("td", {}, item.State), el("td", {}, item.Target.Arn)));
  panel.append(el("h2", {}, "Event source mappings"),
    el("table", {}, el("thead", {}, el("tr", {}, ["Source", "State", "Batch size", "Batching window", "Filters", "Last result",
      "UUID", ""].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 8, class: "muted" }, "No event source mapping.")))), status,
    field("Event source ARN", source, "mapping-source"), field("Batch size", batch, "mapping-batch"),
    field("Starting position (streams)", position, "mapping-position"),
    field("Batching window (seconds)", window_, "mapping-window"),
    field("Filter patterns (one JSON pattern per line)", filters, "mapping-filters"),
    field("Report batch item failures", itemFailures, "mapping-item-failures"),
    field("On-failure destination ARN (streams)", onFailure, "mapping-on-failure"),
    field("Maximum retry attempts (streams)", retries, "mapping-retries"),
    field("Split the batch on a function error (streams)", bisect, "mapping-bisect"), create, createStatus,
    el("h2", {}, "Schedules"),
    el("table", {}, el("thead", {}, el("tr", {}, ["Schedule", "Group", "State", "Target"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, scheduleRows.length ? scheduleRows : el("tr", {}, el("td", { colspan: 4, class: "muted" },
        "No schedule targets this function: create one with aws scheduler create-schedule.")))));
  if (notice) status.replaceChildren(el("span", { class: "ok" }, notice.text));
  if (refocus) refocus.focus();
}

async function layersPage() {
  const listed = (await api("GET", "/2018-10-31/layers?MaxItems=50")).json();
  const rows = (listed.Layers || []).map((layer) => {
    const latest = layer.LatestMatchingVersion || {};
    return el("tr", {}, el("td", {}, el("a", { href: `#/layers/${encodeURIComponent(layer.LayerName)}` }, layer.LayerName)),
      el("td", {}, String(latest.Version ?? "")),
      el("td", {}, (latest.CompatibleRuntimes || []).join(", ")), el("td", {}, latest.Description || ""),
      el("td", {}, latest.LayerVersionArn || ""));
  });
  show(el("h1", {}, "Layers"), el("table", {}, el("thead", {}, el("tr", {}, ["Name", "Latest version", "Compatible runtimes", "Description", "ARN"]
    .map((h) => el("th", { scope: "col" }, h)))), el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No layer.")))));
}

async function layerPage(layer) {
  const listed = (await api("GET", `/2018-10-31/layers/${encodeURIComponent(layer)}/versions?MaxItems=50`)).json();
  const rows = (listed.LayerVersions || []).map((v) => el("tr", {}, el("td", {}, String(v.Version)), el("td", {}, v.Description || ""),
    el("td", {}, (v.CompatibleRuntimes || []).join(", ")), el("td", {}, (v.CompatibleArchitectures || []).join(", ")),
    el("td", {}, v.CreatedDate || ""), el("td", {}, v.LayerVersionArn)));
  show(el("h1", {}, layer), el("p", {}, el("a", { href: "#/layers" }, "All layers")),
    el("table", {}, el("thead", {}, el("tr", {}, ["Version", "Description", "Compatible runtimes", "Architectures", "Created", "ARN"]
      .map((h) => el("th", { scope: "col" }, h)))), el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No version.")))));
}

async function accountPage() {
  const settings = (await api("GET", "/2016-08-19/account-settings")).json();
  const limit = settings.AccountLimit || {}, usage = settings.AccountUsage || {};
  show(el("h1", {}, "Account settings"), definitions([
    ["Concurrent executions (limit)", limit.ConcurrentExecutions], ["Unreserved concurrent executions", limit.UnreservedConcurrentExecutions],
    ["Functions", usage.FunctionCount], ["Code storage used", `${usage.TotalCodeSize} bytes`], ["Code storage limit", `${limit.TotalCodeSize} bytes`],
    ["Code size (unzipped) limit", `${limit.CodeSizeUnzipped} bytes`], ["Code size (zipped) limit", `${limit.CodeSizeZipped} bytes`]]));
}

// -- charts -------------------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  node.append(...children);
  return node;
}

/** A line chart of `lines` ([{label, color, values}]) over `times` (ms), as SVG built node by node. */
function chart(title, unit, times, lines) {
  const width = 560, height = 180, left = 48, bottom = 22, top = 10;
  const values = lines.flatMap((line) => line.values.filter((v) => v !== null));
  const peak = Math.max(0, ...values);
  const niceMax = peak > 0 ? peak * 1.1 : 1;  // headroom above the highest point
  const x = (i) => left + (times.length <= 1 ? 0 : (i / (times.length - 1)) * (width - left - 8));
  const y = (v) => top + (1 - v / niceMax) * (height - top - bottom);
  const parts = [svg("line", { x1: left, y1: y(0), x2: width - 8, y2: y(0), class: "axis" }),
    svg("text", { x: left - 6, y: y(niceMax) + 4, "text-anchor": "end", class: "tick" }, String(+niceMax.toFixed(2))),
    svg("text", { x: left - 6, y: y(0) + 4, "text-anchor": "end", class: "tick" }, "0")];
  if (times.length) {
    const label = (t) => new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    parts.push(svg("text", { x: left, y: height - 4, class: "tick" }, label(times[0])),
      svg("text", { x: width - 8, y: height - 4, "text-anchor": "end", class: "tick" }, label(times[times.length - 1])));
  }
  for (const line of lines) {
    let path = "";
    line.values.forEach((v, i) => {
      if (v === null) return;
      path += `${path && line.values[i - 1] !== null ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
    });
    if (path) parts.push(svg("path", { d: path, fill: "none", stroke: line.color, "stroke-width": 2 }));
    line.values.forEach((v, i) => {  // a point with no neighbour would draw nothing as a line
      const alone = v !== null && (line.values[i - 1] ?? null) === null && (line.values[i + 1] ?? null) === null;
      if (alone) parts.push(svg("circle", { cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 3, fill: line.color }));
    });
  }
  const total = (line) => line.values.reduce((sum, v) => sum + (v || 0), 0);
  const legend = el("p", { class: "legend" }, lines.map((line) => el("span", { class: "swatch-label" },
    el("span", { class: "swatch", "data-color": line.color }), unit === "count" ? `${line.label}: ${total(line)}` : line.label)));
  for (const swatch of legend.querySelectorAll(".swatch")) swatch.style.background = swatch.dataset.color;
  return el("figure", { class: "chart" }, el("figcaption", {}, title),
    svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title }, ...parts), legend);
}

function monitorTab(panel, name) {
  const period = el("select", { "aria-label": "Period" }, [["15m", "Last 15 minutes"], ["1h", "Last hour"], ["24h", "Last 24 hours"]]
    .map(([value, label]) => el("option", { value }, label)));
  const qualifier = el("select", { "aria-label": "Version or alias" }, el("option", { value: "" }, "All versions and aliases"));
  const charts = el("div", { class: "charts", id: "charts" });
  const status = el("p", { class: "muted", role: "status" });
  const draw = async () => {
    if (!charts.isConnected) return;
    try {
      const query = new URLSearchParams({ period: period.value, qualifier: qualifier.value });
      const data = (await api("GET", `/_lambdalet/console/functions/${encodeURIComponent(name)}/metrics?${query}`)).json();
      const known = new Set([...qualifier.options].map((o) => o.value));
      for (const q of data.qualifiers) if (!known.has(q)) qualifier.append(el("option", { value: q }, q));
      const times = data.points.map((p) => p.time), series = (key) => data.points.map((p) => p[key]);
      charts.replaceChildren(
        chart("Invocations", "count", times, [{ label: "Invocations", color: "#0972d3", values: series("invocations") },
          { label: "Errors", color: "#d91515", values: series("errors") }, { label: "Throttles", color: "#8d6605", values: series("throttles") }]),
        chart("Duration (ms)", "ms", times, [{ label: "p50", color: "#0972d3", values: series("durationP50Ms") },
          { label: "p99", color: "#d91515", values: series("durationP99Ms") }]),
        chart("Concurrent executions", "peak", times, [{ label: "Concurrent executions (peak)", color: "#037f0c", values: series("concurrent") }]),
        chart("Cold starts", "count", times, [{ label: "Cold starts", color: "#7d3ac1", values: series("coldStarts") }]));
      status.textContent = `Every ${data.stepSeconds} s; kept in the server's memory for 24 hours (a restart starts afresh). Updated ${new Date().toLocaleTimeString()}.`;
    } catch (e) {
      status.textContent = String(e);
    }
  };
  period.addEventListener("change", draw);
  qualifier.addEventListener("change", draw);
  const refresh = async () => {
    if (!charts.isConnected) return;
    await draw();
    setTimeout(refresh, 5000);
  };
  panel.append(el("h2", {}, "Monitoring"), el("div", { class: "toolbar" }, period, qualifier), status, charts);
  refresh();
}

/** The function's log group, followed live: CloudWatch Logs' FilterLogEvents on this server, polled. */
function logsTab(panel, name, config) {
  const group = ((config.LoggingConfig || {}).LogGroup) || `/aws/lambda/${name}`;
  const filter = el("input", { type: "search", "aria-label": "Filter log lines" });
  const lines = el("pre", { id: "live-log", "aria-live": "polite" });
  const status = el("p", { class: "muted", role: "status" }, `Following ${group}…`);
  const seen = new Set();
  let since = Date.now() - 15 * 60 * 1000;
  const render = () => {
    const needle = filter.value.toLowerCase();
    for (const line of lines.children) line.hidden = !!needle && !line.textContent.toLowerCase().includes(needle);
  };
  filter.addEventListener("input", render);
  const poll = async () => {
    if (!lines.isConnected) return;  // the page moved on
    try {
      let token;
      do {
        const body = { logGroupName: group, startTime: since, limit: 1000, ...(token ? { nextToken: token } : {}) };
        const answer = (await api("POST", "/", body, { "X-Amz-Target": "Logs_20140328.FilterLogEvents",
          "Content-Type": "application/x-amz-json-1.1" })).json();
        for (const event of answer.events || []) {
          if (seen.has(event.eventId)) continue;
          seen.add(event.eventId);
          since = Math.max(since, event.timestamp);
          lines.append(el("div", { class: "log-line" }, `${new Date(event.timestamp).toISOString()}  ${event.message}`));
        }
        token = answer.nextToken;
      } while (token);
      render();
      status.textContent = `Following ${group}: ${lines.children.length} line(s) of the last 15 minutes and since.`;
    } catch (e) {
      status.textContent = e.type === "ResourceNotFoundException" ? `${group} has no log yet: waiting for the first invocation.` : String(e);
    }
    setTimeout(poll, 1000);
  };
  const streams = el("tbody");
  const listStreams = async () => {
    try {
      const answer = (await api("POST", "/", { logGroupName: group, orderBy: "LastEventTime", descending: true, limit: 20 },
        { "X-Amz-Target": "Logs_20140328.DescribeLogStreams", "Content-Type": "application/x-amz-json-1.1" })).json();
      streams.replaceChildren(...(answer.logStreams || []).map((stream) => el("tr", {}, el("td", {}, stream.logStreamName),
        el("td", {}, stream.lastEventTimestamp ? new Date(stream.lastEventTimestamp).toISOString() : ""))));
    } catch (e) {
      streams.replaceChildren(el("tr", {}, el("td", { colspan: 2, class: "muted" }, e.type === "ResourceNotFoundException" ? "No log stream yet." : String(e))));
    }
  };
  panel.append(el("h2", {}, "Live log"), el("div", { class: "toolbar" }, filter), status, lines,
    el("h2", {}, "Log streams (newest first)"),
    el("table", {}, el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Stream"), el("th", { scope: "col" }, "Last event"))), streams));
  poll();
  listStreams();
}

async function codeTab(panel, name, got) {
  const config = got.Configuration;
  const summary = [["Runtime", config.Runtime], ["Handler", config.Handler], ["Code size", `${config.CodeSize} bytes`],
    ["Code SHA-256", config.CodeSha256], ["Last update", config.LastUpdateStatus || ""]];
  panel.append(el("h2", {}, "Code"), el("dl", { class: "config" }, summary.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v ?? "")])));
  if (!got.Code || !got.Code.Location) {
    panel.append(el("p", { class: "muted" }, "This function's code is not a zip the console can edit."));
    return;
  }
  const location_ = new URL(got.Code.Location, window.location.href);
  panel.append(el("p", {}, el("a", { href: location_.pathname, download: `${name}.zip` }, "Download the deployment package")));
  let files;
  try {
    files = await readZip(await (await fetch(location_.pathname)).arrayBuffer());
  } catch (e) {
    panel.append(el("p", { class: "error" }, `The package cannot be opened here: ${e.message}`));
    return;
  }
  const editable = Object.keys(files).filter((f) => isText(files[f]));
  if (!editable.length) {
    panel.append(el("p", { class: "muted" }, "The package has no text file to edit."));
    return;
  }
  const picker = el("select", {}, editable.map((f) => el("option", { value: f }, f)));
  const editor = el("textarea", { spellcheck: "false", rows: 20 });
  const decoder = new TextDecoder(), encoder = new TextEncoder();
  let open = editable[0];
  editor.value = decoder.decode(files[open]);
  picker.addEventListener("change", () => {
    files[open] = encoder.encode(editor.value);
    open = picker.value;
    editor.value = decoder.decode(files[open]);
  });
  const result = el("div", { role: "status" });
  const deploy = el("button", {}, "Deploy");
  deploy.addEventListener("click", async () => {
    files[open] = encoder.encode(editor.value);
    deploy.disabled = true;
    result.replaceChildren(el("span", { class: "muted" }, "Deploying…"));
    try {
      const updated = (await api("PUT", `${fn(name)}/code`, { ZipFile: base64(makeZip(files)) })).json();
      const done = await settled(name, (text) => result.replaceChildren(el("span", { class: "muted" }, text)));
      result.replaceChildren(el("span", { class: "ok" }, `Deployed: ${updated.CodeSha256} (${done.LastUpdateStatus || "Successful"})`));
    } catch (e) {
      result.replaceChildren(el("span", { class: "error" }, String(e)));
    } finally { deploy.disabled = false; }
  });
  panel.append(field("File", picker, "code-file"), field("Source", editor, "code-source"), deploy, result);
}

function reportFields(log) {
  const report = log.split("\n").find((line) => line.startsWith("REPORT ")) || "";
  const fields = {};
  for (const part of report.split("\t")) {
    const match = part.match(/^(?:REPORT RequestId: \S+\s*)?([A-Za-z ]+): (.+)$/);
    if (match) fields[match[1].trim()] = match[2].trim();
  }
  return fields;
}

async function testTab(panel, name) {
  const event = el("textarea", { spellcheck: "false" });
  event.value = JSON.stringify({ key1: "value1", key2: "value2" }, null, 2);
  // Saved test events: kept in the server's database, per function (console/test_events.py).
  const eventsPath = `/_lambdalet/console/functions/${encodeURIComponent(name)}/test-events`;
  const saved = el("select", {});
  const eventName = el("input", { type: "text", autocomplete: "off", maxlength: 25 });
  const saveStatus = el("div", { role: "status" });
  let events = [];
  const loadSaved = async (select) => {
    events = (await api("GET", eventsPath)).json().TestEvents || [];
    saved.replaceChildren(el("option", { value: "" }, "New event"), ...events.map((e) => el("option", { value: e.Name }, e.Name)));
    saved.value = select || "";
  };
  saved.addEventListener("change", () => {
    const chosen = events.find((e) => e.Name === saved.value);
    eventName.value = chosen ? chosen.Name : "";
    if (chosen) event.value = chosen.Event;
  });
  const save = el("button", { class: "secondary" }, "Save event");
  save.addEventListener("click", async () => {
    saveStatus.replaceChildren();
    try {
      await api("PUT", `${eventsPath}/${encodeURIComponent(eventName.value.trim())}`, event.value);
      await loadSaved(eventName.value.trim());
      saveStatus.replaceChildren(el("span", { class: "ok" }, `Saved ${eventName.value.trim()}.`));
    } catch (e) { saveStatus.replaceChildren(el("span", { class: "error" }, String(e))); }
  });
  const forget = el("button", { class: "danger" }, "Delete event");
  forget.addEventListener("click", async () => {
    if (!saved.value || !confirm(`Delete the test event ${saved.value}?`)) return;
    try {
      await api("DELETE", `${eventsPath}/${encodeURIComponent(saved.value)}`);
      await loadSaved("");
      eventName.value = "";
      saveStatus.replaceChildren(el("span", { class: "ok" }, "Deleted."));
    } catch (e) { saveStatus.replaceChildren(el("span", { class: "error" }, String(e))); }
  });
  await loadSaved("");
  const asynchronous = el("input", { type: "checkbox", id: "test-async" });
  const run = el("button", {}, "Test");
  const output = el("div", { role: "status", "aria-live": "polite" });
  run.addEventListener("click", async () => {
    output.replaceChildren(el("p", { class: "muted" }, "Invoking…"));
    run.disabled = true;
    try {
      JSON.parse(event.value);
    } catch (e) {
      output.replaceChildren(el("p", { class: "error" }, `The event is not valid JSON: ${e.message}`));
      run.disabled = false;
      return;
    }
    try {
      const headers = asynchronous.checked ? { "X-Amz-Invocation-Type": "Event" } : { "X-Amz-Log-Type": "Tail" };
      const { response, text } = await api("POST", `${fn(name)}/invocations`, event.value, headers);
      if (asynchronous.checked) {
        output.replaceChildren(el("p", { class: "ok" }, `Queued (HTTP ${response.status}): request ${response.headers.get("x-amzn-RequestId") || ""}`));
        return;
      }
      const failed = response.headers.get("X-Amz-Function-Error");
      const log = response.headers.get("X-Amz-Log-Result") ? fromBase64Text(response.headers.get("X-Amz-Log-Result")) : "";
      const report = reportFields(log);
      let pretty = text;
      try { pretty = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* not JSON */ }
      output.replaceChildren(
        el("h2", {}, failed ? "Execution result: failed" : "Execution result: succeeded"),
        el("div", { class: "metrics" }, ["Duration", "Billed Duration", "Max Memory Used", "Init Duration"]
          .filter((k) => report[k]).map((k) => el("div", {}, k, el("b", {}, report[k])))),
        el("h2", {}, "Response"), el("pre", { id: "test-response" }, pretty),
        el("h2", {}, "Log output"), el("pre", { id: "test-log" }, log));
    } catch (e) {
      output.replaceChildren(el("p", { class: "error" }, String(e)));
    } finally { run.disabled = false; }
  });
  panel.append(el("h2", {}, "Test event"), field("Saved events", saved, "test-saved"), field("Event name", eventName, "test-name"),
    save, forget, saveStatus, field("Event JSON", event, "test-event"),
    el("div", {}, asynchronous, el("label", { for: "test-async", class: "inline" }, " Asynchronous invocation")), run, output);
}

function configurationTab(panel, name, config) {
  const logging = config.LoggingConfig || {};
  const input = (attrs) => el("input", { type: "text", autocomplete: "off", spellcheck: "false", ...attrs });
  const select = (options, value) => {
    const node = el("select", {}, options.map((o) => el("option", { value: o }, o === "" ? "(default)" : o)));
    node.value = value ?? "";
    return node;
  };
  const variables = el("textarea", { spellcheck: "false", rows: 6 });
  variables.value = Object.entries((config.Environment || {}).Variables || {}).map(([k, v]) => `${k}=${v}`).join("\n");
  const layers = el("textarea", { spellcheck: "false", rows: 3 });
  layers.value = (config.Layers || []).map((l) => l.Arn).join("\n");
  const runtimes = RUNTIMES.includes(config.Runtime) || !config.Runtime ? RUNTIMES : [config.Runtime, ...RUNTIMES];
  // Each setting: its input, how it reads back into UpdateFunctionConfiguration, and the member
  // name the API's messages use (a refusal goes beside its field).
  const settings = [
    ["memory", "Memory (MB)", el("input", { type: "number", value: config.MemorySize, min: 128, max: 10240 }), "memorysize",
      (v) => ({ MemorySize: Number(v) }), String(config.MemorySize)],
    ["timeout", "Timeout (seconds)", el("input", { type: "number", value: config.Timeout, min: 1, max: 900 }), "timeout",
      (v) => ({ Timeout: Number(v) }), String(config.Timeout)],
    ["ephemeral", "Ephemeral storage (MB)", el("input", { type: "number", value: (config.EphemeralStorage || {}).Size, min: 512, max: 10240 }),
      "ephemeralstorage", (v) => ({ EphemeralStorage: { Size: Number(v) } }), String((config.EphemeralStorage || {}).Size)],
    ["description", "Description", input({ value: config.Description || "" }), "description", (v) => ({ Description: v }), config.Description || ""],
    ["handler", "Handler", input({ value: config.Handler || "" }), "handler", (v) => ({ Handler: v.trim() }), config.Handler || ""],
    ["runtime", "Runtime", select(runtimes, config.Runtime), "runtime", (v) => ({ Runtime: v }), config.Runtime || ""],
    ["role", "Execution role", input({ value: config.Role || "" }), "role", (v) => ({ Role: v.trim() }), config.Role || ""],
    ["variables", "Environment variables (KEY=value, one per line)", variables, "environment", null, variables.value],
    ["layers", "Layers (version ARNs, one per line)", layers, "layers",
      (v) => ({ Layers: v.split("\n").map((l) => l.trim()).filter(Boolean) }), layers.value],
    ["snapstart", "SnapStart", select(["None", "PublishedVersions"], (config.SnapStart || {}).ApplyOn || "None"), "snapstart",
      (v) => ({ SnapStart: { ApplyOn: v } }), (config.SnapStart || {}).ApplyOn || "None"],
    ["log-format", "Log format", select(["Text", "JSON"], logging.LogFormat || "Text"), "logformat", null, logging.LogFormat || "Text"],
    ["app-level", "Application log level (JSON)", select(["", "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"], logging.ApplicationLogLevel),
      "applicationloglevel", null, logging.ApplicationLogLevel || ""],
    ["system-level", "System log level (JSON)", select(["", "DEBUG", "INFO", "WARN"], logging.SystemLogLevel), "systemloglevel", null,
      logging.SystemLogLevel || ""],
    ["log-group", "Log group", input({ value: logging.LogGroup || "" }), "loggroup", null, logging.LogGroup || ""],
  ];
  const byId = Object.fromEntries(settings.map(([id, , node]) => [id, node]));
  const error = el("div", { class: "error", role: "alert" });
  const save = el("button", { type: "submit" }, "Save");
  const saved = el("div", { role: "status" });
  const form = el("form", { novalidate: true }, settings.map(([id, label, node]) => field(label, node, id)), error, save, saved);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const [id] of settings) document.getElementById(`${id}-error`).textContent = "";
    error.textContent = saved.textContent = "";
    const request = {};  // only what changed: an unchanged setting is not sent again
    for (const [id, , node, , read, before] of settings) if (read && node.value !== before) Object.assign(request, read(node.value));
    if (variables.value !== settings.find(([id]) => id === "variables")[5]) {
      const env = {};
      for (const line of variables.value.split("\n")) {
        if (!line.trim()) continue;
        const at = line.indexOf("=");
        if (at < 1) { document.getElementById("variables-error").textContent = `Not KEY=value: ${line}`; return; }
        env[line.slice(0, at).trim()] = line.slice(at + 1);
      }
      request.Environment = { Variables: env };
    }
    if (settings.some(([id, , node, , , before]) => ["log-format", "app-level", "system-level", "log-group"].includes(id) && node.value !== before)) {
      const chosen = { LogFormat: byId["log-format"].value, ApplicationLogLevel: byId["app-level"].value,
        SystemLogLevel: byId["system-level"].value, LogGroup: byId["log-group"].value.trim() };
      request.LoggingConfig = Object.fromEntries(Object.entries(chosen).filter(([, v]) => v));
    }
    if (!Object.keys(request).length) { saved.replaceChildren(el("span", { class: "muted" }, "Nothing changed.")); return; }
    save.disabled = true;
    try {
      await api("PUT", `${fn(name)}/configuration`, request);
      const fresh = await settled(name, (text) => saved.replaceChildren(el("span", { class: "muted" }, text)));
      detailsList.replaceWith(detailsList = detailsOf(fresh));
      saved.replaceChildren(el("span", { class: "ok" }, "Saved."));
      for (const setting of settings) setting[5] = setting[2].value;  // the new values are the saved ones
    } catch (e) {
      // The API names the member it refuses ('memorySize', 'ephemeralStorage.size'): its message goes beside that field.
      const text = e.message.toLowerCase().replace(/[^a-z]/g, "");
      const match = settings.find(([, , , member]) => text.includes(member));
      (match ? document.getElementById(`${match[0]}-error`) : error).textContent = String(e);
    } finally { save.disabled = false; }
  });
  const detailsOf = (c) => definitions([["Runtime", c.Runtime], ["Handler", c.Handler], ["Role", c.Role],
    ["Architectures", (c.Architectures || []).join(", ")], ["Ephemeral storage", `${(c.EphemeralStorage || {}).Size} MB`],
    ["State", c.State], ["Last modified", c.LastModified], ["Revision", c.RevisionId]]);
  let detailsList = detailsOf(config);
  panel.append(el("h2", {}, "General configuration"), form, el("h2", {}, "Details"), detailsList);
  tagsSection(panel, config.FunctionArn).catch((e) => panel.append(el("p", { class: "error" }, String(e))));
}

/** A function's tags: ListTags, TagResource and UntagResource on its ARN. */
async function tagsSection(panel, arn) {
  const path = `/2017-03-31/tags/${encodeURIComponent(arn)}`;
  const tags = (await api("GET", path)).json().Tags || {};
  const editor = el("textarea", { spellcheck: "false", rows: 4 });
  editor.value = Object.entries(tags).map(([k, v]) => `${k}=${v}`).join("\n");
  const status = el("div", { role: "status" });
  const save = el("button", {}, "Save tags");
  save.addEventListener("click", async () => {
    status.replaceChildren();
    const wanted = {};
    for (const line of editor.value.split("\n")) {
      if (!line.trim()) continue;
      const at = line.indexOf("=");
      wanted[(at < 0 ? line : line.slice(0, at)).trim()] = at < 0 ? "" : line.slice(at + 1);
    }
    try {
      const current = (await api("GET", path)).json().Tags || {};
      const gone = Object.keys(current).filter((k) => !(k in wanted));
      if (gone.length) await api("DELETE", `${path}?${gone.map((k) => `tagKeys=${encodeURIComponent(k)}`).join("&")}`);
      if (Object.keys(wanted).length) await api("POST", path, { Tags: wanted });
      status.replaceChildren(el("span", { class: "ok" }, "Tags saved."));
    } catch (e) { status.replaceChildren(el("span", { class: "error" }, String(e))); }
  });
  panel.append(el("h2", {}, "Tags"), field("Tags (key=value, one per line)", editor, "tags"), save, status);
}

// -- routing ------------------------------------------------------------------------------------

function signInPage(reason) {
  const key = el("input", { type: "text", autocomplete: "off", spellcheck: "false" });
  const secret = el("input", { type: "password", autocomplete: "off" });
  const token = el("input", { type: "password", autocomplete: "off" });
  const error = el("div", { class: "error", role: "alert" }, reason ? String(reason) : "");
  const form = el("form", { novalidate: true }, field("Access key ID", key, "access-key-id"),
    field("Secret access key", secret, "secret-access-key"), field("Session token (temporary credentials only)", token, "session-token"),
    error, el("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    sessionStorage.setItem(CREDENTIALS, JSON.stringify({ accessKeyId: key.value.trim(), secretAccessKey: secret.value,
      sessionToken: token.value.trim() || undefined }));
    await route();
  });
  show(el("h1", {}, "Sign in"), el("p", {}, `This server authenticates every request (--auth iam): sign in with an access key of the account. `
    + "It is kept in this browser tab only, and every request is signed with it here."), form);
  key.focus();
}

function showError(e) {
  if (e instanceof ApiError && SIGNIN_ERRORS.includes(e.type)) {
    const tried = credentials() !== null;  // a key that did not work, rather than none yet
    sessionStorage.removeItem(CREDENTIALS);
    signInPage(tried ? e : "");
    return;
  }
  if (e instanceof ApiError && ACCESS_DENIED.includes(e.type)) {  // as the AWS console says it, with the policy's words
    const who = credentials();
    show(el("h1", {}, "Access denied"),
      el("p", { class: "error", role: "alert" }, "You don't have permission to do this. Ask an administrator of the "
        + "account to add the permission to your identity policy, or sign in with other credentials."),
      el("pre", { class: "denied" }, e.message),
      el("p", {}, who ? `Signed in with the access key ${who.accessKeyId}. ` : "",
        el("a", { href: "#/sign-out" }, "Sign in as someone else"), " · ", el("a", { href: "#/" }, "Back to the functions")));
    return;
  }
  show(el("h1", {}, "Something went wrong"), el("p", { class: "error", role: "alert" }, String(e)),
    el("p", {}, el("a", { href: "#/" }, "Back to the functions")));
}

async function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const parts = hash.split("/").filter(Boolean).map(decodeURIComponent);
  try {
    if (parts.length === 0) await listPage();
    else if (parts[0] === "create") createPage();
    else if (parts[0] === "layers" && parts[1]) await layerPage(parts[1]);
    else if (parts[0] === "layers") await layersPage();
    else if (parts[0] === "account") await accountPage();
    else if (parts[0] === "sign-out") { sessionStorage.removeItem(CREDENTIALS); location.hash = "#/"; return; }
    else if (parts[0] === "functions" && parts[1]) await functionPage(parts[1], parts[2]);
    else show(el("h1", {}, "Not found"), el("p", {}, el("a", { href: "#/" }, "Back to the functions")));
  } catch (e) {
    showError(e);
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", route);
