'use strict';
/*
 * Lambdalet's Node.js runtime: a dependency-free client of Lambda's Runtime API.
 *
 * Started as `node [flags] bootstrap.cjs` inside an execution environment (cwd LAMBDA_TASK_ROOT).
 * It loads the handler named by _HANDLER (CommonJS or ES module, in a nested path or not), then
 * loops: GET /invocation/next, call the handler, POST /response or /error. Handler resolution,
 * the context object, callbacks and callbackWaitsForEmptyEventLoop, error payloads
 * ({errorType, errorMessage, trace}) and console lines (<time>\t<request id>\t<LEVEL>\t<message>)
 * follow AWS's Node.js runtime (aws-lambda-ric), so functions behave the same here and on Lambda.
 *
 * CommonJS on purpose: the ES module loader is only started when a handler needs it, and the
 * Runtime API is spoken over one kept-alive `net` socket instead of the `http` module (which
 * costs a cold start several milliseconds of module loading for four small requests).
 * Runs on Node.js 18+; imports nothing but Node's built-ins.
 */

const fs = require('fs');
const net = require('net');
const path = require('path');
const util = require('util');

const RUNTIME_PATH = '/2018-06-01/runtime';
const STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');
const HTTP_INTEGRATION = 'application/vnd.awslambda.http-integration-response';

// -- errors, in the shape and with the names of AWS's Node.js runtime ---------------------------

class RuntimeError extends Error {}
const runtimeErrors = {};
for (const name of ['ImportModuleError', 'HandlerNotFound', 'MalformedHandlerName', 'UserCodeSyntaxError',
  'UnhandledPromiseRejection', 'NodeJsExit']) {
  const cls = { [name]: class extends RuntimeError {} }[name];
  cls.prototype.name = `Runtime.${name}`;
  runtimeErrors[name] = cls;
}

function isErrorLike(value) {
  return value && typeof value.name === 'string' && typeof value.message === 'string' &&
    typeof value.stack === 'string';
}

/** The body posted to /error and /init/error. */
function errorPayload(error) {
  try {
    if (util.types.isNativeError(error) || isErrorLike(error)) {
      return { errorType: error.name, errorMessage: error.message, trace: error.stack.split('\n') };
    }
    return { errorType: typeof error, errorMessage: String(error), trace: [] };
  } catch (_) {
    return {
      errorType: 'handled',
      errorMessage: 'callback called with Error argument, but there was a problem while retrieving one or more ' +
        'of its message, name, and stack',
    };
  }
}

/** An error as the runtime logs it: a tab, then JSON with its name, message, own fields and stack. */
function formatError(error) {
  const withFields = (_key, value) => {
    if (!(value instanceof Error)) return value;
    const out = Object.assign({ errorType: value.name, errorMessage: value.message, code: value.code }, value);
    if (typeof value.stack === 'string') out.stack = value.stack.split('\n');
    return out;
  };
  try {
    return '\t' + JSON.stringify(error, withFields);
  } catch (_) {
    return '\t' + JSON.stringify(errorPayload(error));
  }
}

// -- console: Lambda's text log lines ------------------------------------------------------------

let currentRequestId; // undefined during init, as on Lambda

function writeOut(text) {
  const data = Buffer.from(text, 'utf8');
  let offset = 0;
  while (offset < data.length) {
    try {
      offset += fs.writeSync(1, data, offset);
    } catch (err) {
      if (err.code !== 'EAGAIN') return; // nowhere left to log to
    }
  }
}

// LoggingConfig JSON (AWS_LAMBDA_LOG_FORMAT): one JSON object per record, levels below
// AWS_LAMBDA_LOG_LEVEL dropped, as AWS's Node.js runtime does.
const LEVEL_ORDER = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'];
const JSON_FORMAT = (process.env.AWS_LAMBDA_LOG_FORMAT || '').toUpperCase() === 'JSON';
const MIN_LEVEL = JSON_FORMAT ? Math.max(0, LEVEL_ORDER.indexOf((process.env.AWS_LAMBDA_LOG_LEVEL || 'INFO').toUpperCase())) : 0;

function jsonLine(level, args) {
  const record = { timestamp: new Date().toISOString(), level, requestId: currentRequestId };
  const error = args.length === 1 && args[0] instanceof Error ? args[0] : undefined;
  if (error) {
    record.message = { errorType: error.name, errorMessage: error.message, stackTrace: String(error.stack || '').split('\n') };
    Object.assign(record, { errorType: error.name, errorMessage: error.message, stackTrace: record.message.stackTrace });
  } else {
    record.message = util.format(...args);
  }
  let text;
  try {
    text = JSON.stringify(record);
  } catch (err) {
    text = JSON.stringify({ ...record, message: String(record.message) });
  }
  writeOut(`${text}\n`);
}

function logLine(level, args) {
  if (JSON_FORMAT) {
    if (LEVEL_ORDER.indexOf(level) >= MIN_LEVEL) jsonLine(level, args);
    return;
  }
  // A multi-line record is one event, its lines lines and its \r kept (RECORD_MARK, record_text
  // in lambdalet/logs.py).
  const line = `${new Date().toISOString()}\t${currentRequestId}\t${level}\t${util.format(...args)}`;
  writeOut(line.includes('\n') ? `\x1e${line.replace(/\r/g, '\x1e').replace(/\n/g, '\r')}\n` : `${line}\n`);
}

function patchConsole() {
  const levels = { trace: 'TRACE', debug: 'DEBUG', info: 'INFO', log: 'INFO', warn: 'WARN', error: 'ERROR',
    fatal: 'FATAL' };
  for (const [method, level] of Object.entries(levels)) {
    console[method] = (...args) => logLine(level, args);
  }
}

// -- the Runtime API client ----------------------------------------------------------------------

/**
 * A minimal keep-alive HTTP/1.1 client: one request at a time on one socket. The socket is
 * unref'd while no request is out, so it never keeps the event loop alive for the handler (that
 * is what callbackWaitsForEmptyEventLoop waits for).
 */
class RuntimeApiClient {
  constructor(address) {
    const colon = address.lastIndexOf(':');
    this.host = address.slice(0, colon);
    this.port = Number(address.slice(colon + 1));
    this.socket = null;
    this.pending = null;
    this.buffer = Buffer.alloc(0);
  }

  _connect() {
    const socket = net.connect({ host: this.host, port: this.port });
    socket.setNoDelay(true);
    socket.on('data', (chunk) => this._onData(socket, chunk));
    socket.on('error', () => {}); // 'close' follows and settles the pending request
    socket.on('close', () => this._onClose(socket));
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
  }

  request(method, urlPath, body, headers) {
    const payload = body === undefined ? Buffer.alloc(0) : Buffer.from(body, 'utf8');
    let head = `${method} ${RUNTIME_PATH}${urlPath} HTTP/1.1\r\nHost: ${this.host}:${this.port}\r\n` +
      `Content-Length: ${payload.length}\r\n`;
    for (const [name, value] of Object.entries(headers || {})) head += `${name}: ${value}\r\n`;
    const message = Buffer.concat([Buffer.from(head + '\r\n', 'latin1'), payload]);
    return new Promise((resolve, reject) => {
      const attempt = (retry) => {
        if (this.socket === null) this._connect();
        this.pending = { resolve, reject, retry: retry ? () => attempt(false) : null, received: false };
        this.socket.ref();
        this.socket.write(message);
      };
      attempt(true);
    });
  }

  _onData(socket, chunk) {
    if (socket !== this.socket) return;
    if (this.pending) this.pending.received = true;
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    const response = this._parse();
    if (response === null) return;
    const pending = this.pending;
    this.pending = null;
    socket.unref();
    if (pending) pending.resolve(response);
  }

  /** One complete response off the front of the buffer, or null if it has not all arrived. */
  _parse() {
    const end = this.buffer.indexOf('\r\n\r\n');
    if (end < 0) return null;
    const lines = this.buffer.subarray(0, end).toString('latin1').split('\r\n');
    const status = Number(lines[0].split(' ')[1]);
    const headers = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    let rest = this.buffer.subarray(end + 4);
    let body;
    if (headers['transfer-encoding'] && headers['transfer-encoding'].toLowerCase() === 'chunked') {
      const parts = [];
      for (;;) {
        const eol = rest.indexOf('\r\n');
        if (eol < 0) return null;
        const size = parseInt(rest.subarray(0, eol).toString('latin1'), 16);
        if (size === 0) {
          const trailerEnd = rest.indexOf('\r\n\r\n', eol);
          if (trailerEnd < 0 && rest.length < eol + 4) return null;
          rest = rest.subarray(trailerEnd < 0 ? eol + 4 : trailerEnd + 4);
          break;
        }
        if (rest.length < eol + 2 + size + 2) return null;
        parts.push(rest.subarray(eol + 2, eol + 2 + size));
        rest = rest.subarray(eol + 2 + size + 2);
      }
      body = Buffer.concat(parts);
    } else {
      const length = Number(headers['content-length'] || 0);
      if (rest.length < length) return null;
      body = rest.subarray(0, length);
      rest = rest.subarray(length);
    }
    this.buffer = rest;
    if ((headers.connection || '').toLowerCase() === 'close') this._drop();
    return { status, headers, body };
  }

  _drop() {
    if (this.socket !== null) this.socket.destroy();
    this.socket = null;
  }

  _onClose(socket) {
    if (socket !== this.socket) return;
    this.socket = null;
    const pending = this.pending;
    this.pending = null;
    if (!pending) return;
    if (pending.retry && !pending.received) pending.retry(); // a kept-alive connection the server had closed
    else pending.reject(new Error('Runtime API closed the connection'));
  }

  async next() {
    const { status, headers, body } = await this.request('GET', '/invocation/next');
    if (status !== 200) throw new Error(`Failed to get next invocation: HTTP ${status} ${body.toString()}`);
    return { headers, body };
  }

  postResponse(requestId, bodyString) {
    return this.request('POST', `/invocation/${encodeURIComponent(requestId)}/response`, bodyString,
      { 'Content-Type': 'application/json' });
  }

  postError(requestId, error) {
    return this.request('POST', `/invocation/${encodeURIComponent(requestId)}/error`,
      JSON.stringify(errorPayload(error)), { 'Content-Type': 'application/json' });
  }

  postInitError(error) {
    const payload = errorPayload(error);
    return this.request('POST', '/init/error', JSON.stringify(payload),
      { 'Content-Type': 'application/json', 'Lambda-Runtime-Function-Error-Type': payload.errorType });
  }
}

// -- response streaming (awslambda.streamifyResponse), as aws-lambda-ric does it ---------------

/** The `awslambda` global: streamifyResponse marks a handler as streaming; HttpResponseStream.from
 * writes a function URL's metadata prelude (JSON, then 8 NUL bytes) before the body. */
function installAwslambdaGlobal() {
  globalThis.awslambda = {
    streamifyResponse(handler) {
      handler[STREAMING] = 'response';
      return handler;
    },
    HttpResponseStream: {
      from(responseStream, prelude) {
        responseStream.setContentType(HTTP_INTEGRATION);
        responseStream.write(JSON.stringify(prelude || {}));
        responseStream.write(Buffer.alloc(8));
        return responseStream;
      },
    },
  };
}

/** A Writable streaming one invocation's /response: a chunked POST on a connection of its own
 * (Lambda-Runtime-Function-Response-Mode: streaming), opened at the first write or the end. A
 * write completes once the socket took it, so a slow caller slows the handler's writes. A failure
 * (`stream.failure`) goes in the error trailers. `stream.finished` settles once the Runtime API
 * answered. */
function createResponseStream(client, requestId) {
  const { Writable } = require('stream');
  let socket = null;
  let contentType = 'application/octet-stream';
  let settle;
  const finished = new Promise((resolve) => { settle = resolve; });
  const open = () => {
    socket = net.connect({ host: client.host, port: client.port });
    socket.setNoDelay(true);
    let answer = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      answer = Buffer.concat([answer, chunk]);
      if (answer.indexOf('\r\n\r\n') >= 0) socket.destroy();
    });
    socket.on('error', () => {});
    socket.on('close', () => settle());
    socket.write(`POST ${RUNTIME_PATH}/invocation/${encodeURIComponent(requestId)}/response HTTP/1.1\r\n` +
      `Host: ${client.host}:${client.port}\r\nLambda-Runtime-Function-Response-Mode: streaming\r\n` +
      `Transfer-Encoding: chunked\r\nContent-Type: ${contentType}\r\n` +
      'Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n\r\n');
  };
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      if (socket === null) open();
      if (!chunk.length) return callback();
      socket.write(`${chunk.length.toString(16)}\r\n`);
      socket.write(chunk);
      socket.write('\r\n', () => callback());
    },
    final(callback) {
      if (socket === null) open();
      let trailers = '';
      if (stream.failure !== undefined) {
        const payload = errorPayload(stream.failure);
        trailers = `Lambda-Runtime-Function-Error-Type: ${payload.errorType}\r\n` +
          `Lambda-Runtime-Function-Error-Body: ${Buffer.from(JSON.stringify(payload)).toString('base64')}\r\n`;
      }
      socket.write(`0\r\n${trailers}\r\n`, () => callback());
    },
  });
  stream.setContentType = (value) => { contentType = value; };
  stream.finished = finished;
  return stream;
}

// -- loading the handler -------------------------------------------------------------------------

function tryRequire(file) {
  return fs.existsSync(file) ? require(file) : undefined;
}

async function tryImport(file) {
  return fs.existsSync(file) ? import(require('url').pathToFileURL(file).href) : undefined;
}

/** Whether the nearest package.json above `folder` (before any node_modules) says "type": "module". */
function typeModule(folder) {
  for (;;) {
    if (folder.endsWith('/node_modules')) return false;
    const manifest = path.join(folder, 'package.json');
    if (fs.existsSync(manifest)) {
      try {
        return JSON.parse(fs.readFileSync(manifest, 'utf8')).type === 'module';
      } catch (err) {
        console.warn(`${manifest} cannot be read, it will be ignored for ES module detection purposes.`, err);
        return false;
      }
    }
    const parent = path.dirname(folder);
    if (parent === folder) return false;
    folder = parent;
  }
}

/** The module a handler names, tried as AWS's runtime tries it: extensionless, .js (CommonJS or,
 * under "type": "module", ES), .mjs, .cjs, then Node's own resolution from the task root. */
async function loadModule(appRoot, moduleRoot, moduleName) {
  const base = path.resolve(appRoot, moduleRoot, moduleName);
  const extensionless = tryRequire(base);
  if (extensionless) return extensionless;
  const esm = typeModule(path.dirname(base));
  if (!esm) {
    const loaded = tryRequire(base + '.js');
    if (loaded) return loaded;
  }
  const loaded = (esm && (await tryImport(base + '.js'))) || (await tryImport(base + '.mjs')) ||
    tryRequire(base + '.cjs');
  if (loaded) return loaded;
  return require(require.resolve(moduleName, { paths: [appRoot, moduleRoot] }));
}

async function loadHandler(appRoot, fullHandler) {
  if (fullHandler.includes('..')) {
    throw new runtimeErrors.MalformedHandlerName(`'${fullHandler}' is not a valid handler name. ` +
      'Use absolute paths when specifying root directories in handler names.');
  }
  const handlerString = path.basename(fullHandler);
  const moduleRoot = fullHandler.substring(0, fullHandler.indexOf(handlerString));
  const match = handlerString.match(/^([^.]*)\.(.*)$/);
  if (!match) throw new runtimeErrors.MalformedHandlerName('Bad handler');
  const [, moduleName, handlerPath] = match;
  let userModule;
  try {
    userModule = await loadModule(appRoot, moduleRoot, moduleName);
  } catch (err) {
    if (err instanceof SyntaxError) throw new runtimeErrors.UserCodeSyntaxError(String(err));
    if (err && (err.code === 'MODULE_NOT_FOUND' || err.code === 'ERR_MODULE_NOT_FOUND')) {
      throw new runtimeErrors.ImportModuleError(String(err));
    }
    throw err;
  }
  const handler = handlerPath.split('.').reduce((object, key) => object && object[key], userModule);
  if (!handler) throw new runtimeErrors.HandlerNotFound(`${fullHandler} is undefined or not exported`);
  if (typeof handler !== 'function') throw new runtimeErrors.HandlerNotFound(`${fullHandler} is not a function`);
  return handler;
}

// -- running invocations ---------------------------------------------------------------------------

/** What runs when the event loop empties ('beforeExit'): how callback handlers finish. */
let beforeExit = null;

function setBeforeExit(action) {
  beforeExit = action;
}

function parseJsonHeader(value, name) {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new Error(`Cannot parse ${name} as json: ${err.toString()}`);
  }
}

class Runtime {
  constructor(client, handler) {
    this.client = client;
    this.handler = handler;
    this.isAsync = handler.constructor && handler.constructor.name === 'AsyncFunction';
    this.onFatal = (error, code) => this.client.postInitError(error).then(() => process.exit(code), () => process.exit(code));
  }

  scheduleNext() {
    setImmediate(() => this.handleOnce().catch((err) => {
      console.log(`Unexpected Top Level Error: ${err}`);
      process.exit(1);
    }));
  }

  async handleOnce() {
    const { headers, body } = await this.client.next();
    const requestId = headers['lambda-runtime-aws-request-id'];
    currentRequestId = requestId;
    const traceId = headers['lambda-runtime-trace-id'];
    if (traceId) process.env._X_AMZN_TRACE_ID = traceId;
    else delete process.env._X_AMZN_TRACE_ID;

    const { callback, context, markCompleted } = this.callbackContext(requestId);
    this.onFatal = (error, code) => {
      this.client.postError(requestId, error).then(() => process.exit(code), () => process.exit(code));
    };
    setBeforeExit(() => { // the loop emptied and the handler never finished
      markCompleted();
      if (this.isAsync) {
        const error = new runtimeErrors.NodeJsExit('The Lambda runtime client detected an unexpected Node.js exit ' +
          'code. This is most commonly caused by a Promise that was never settled.');
        console.error('Invoke Error', formatError(error));
        this.client.postError(requestId, error).then(() => this.scheduleNext());
      } else {
        this.client.postResponse(requestId, 'null').then(() => this.scheduleNext());
      }
    });
    try {
      const deadline = Number(headers['lambda-runtime-deadline-ms']);
      Object.assign(context, {
        functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
        functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
        memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
        logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
        logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
        clientContext: parseJsonHeader(headers['lambda-runtime-client-context'], 'ClientContext'),
        identity: parseJsonHeader(headers['lambda-runtime-cognito-identity'], 'CognitoIdentity'),
        invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
        awsRequestId: requestId,
        getRemainingTimeInMillis: () => deadline - Date.now(),
      });
      if (headers['lambda-runtime-aws-tenant-id'] !== undefined) context.tenantId = headers['lambda-runtime-aws-tenant-id'];
      if (this.handler[STREAMING] === 'response') {
        this.streamOnce(requestId, JSON.parse(body.toString('utf8')), context, markCompleted);
        return;
      }
      const result = this.handler(JSON.parse(body.toString('utf8')), context, callback);
      if (result && typeof result.then === 'function') {
        result.then(context.succeed, context.fail).catch(context.fail);
      }
    } catch (err) {
      callback(err);
    }
  }

  /** A streamifyResponse handler: (event, responseStream, context), its stream ended when its
   * promise settles (with the error in the trailers when it rejects). */
  streamOnce(requestId, event, context, markCompleted) {
    setBeforeExit(null);
    markCompleted();
    const responseStream = createResponseStream(this.client, requestId);
    const end = () => { if (!responseStream.writableEnded) responseStream.end(); };
    Promise.resolve().then(() => this.handler(event, responseStream, context)).then(end, (err) => {
      console.error('Invoke Error', formatError(err));
      responseStream.failure = err;
      end();
    });
    responseStream.finished.then(() => this.scheduleNext());
  }

  /** The handler's callback and the context's succeed/fail/done: the first call of any wins. */
  callbackContext(requestId) {
    let completed = false;
    let waitForEmptyEventLoop = true;
    const scheduleNext = () => this.scheduleNext();
    const postError = (err) => {
      console.error('Invoke Error', formatError(err));
      this.client.postError(requestId, err).then(scheduleNext, fatal);
    };
    const complete = (result) => {
      if (completed) {
        console.error('Invocation has already been reported as done. Cannot call complete more than once per invocation.');
        return;
      }
      completed = true;
      let serialized;
      try {
        serialized = JSON.stringify(result === undefined ? null : result);
      } catch (_) {
        postError(new Error('Unable to stringify response body'));
        return;
      }
      this.client.postResponse(requestId, serialized).then(scheduleNext, fatal);
    };
    const done = (err, result) => {
      setBeforeExit(null);
      if (err !== undefined && err !== null) postError(err);
      else complete(result);
    };
    let finished = false;
    const once = (fn) => (...args) => {
      if (!finished) {
        finished = true;
        fn(...args);
      }
    };
    const callback = once((err, result) => {
      setBeforeExit(null);
      if (err !== undefined && err !== null) postError(err);
      else if (!waitForEmptyEventLoop) complete(result);
      else setBeforeExit(() => setImmediate(() => complete(result)));
    });
    const context = {
      get callbackWaitsForEmptyEventLoop() {
        return waitForEmptyEventLoop;
      },
      set callbackWaitsForEmptyEventLoop(value) {
        waitForEmptyEventLoop = value;
      },
      succeed: once((result) => done(null, result)),
      fail: once((err) => done(err === undefined || err === null ? 'handled' : err, null)),
      done: once(done),
    };
    return { callback, context, markCompleted: () => { completed = true; } };
  }
}

function fatal(err) {
  writeOut(`lambdalet runtime: ${err && err.message}\n`);
  process.exit(1);
}

async function main() {
  patchConsole();
  const client = new RuntimeApiClient(process.env.AWS_LAMBDA_RUNTIME_API);
  let runtime = { onFatal: (error, code) => client.postInitError(error).then(() => process.exit(code), () => process.exit(code)) };
  process.on('uncaughtException', (error) => {
    console.error('Uncaught Exception', formatError(error));
    runtime.onFatal(error, 129);
  });
  process.on('unhandledRejection', (reason, promise) => {
    const error = new runtimeErrors.UnhandledPromiseRejection(reason === undefined || reason === null ? String(reason) : reason.toString());
    error.reason = reason;
    error.promise = promise;
    console.error('Unhandled Promise Rejection', formatError(error));
    runtime.onFatal(error, 128);
  });
  process.on('beforeExit', () => {
    const action = beforeExit;
    beforeExit = null;
    if (action) action();
  });
  installAwslambdaGlobal();
  const appRoot = process.env.LAMBDA_TASK_ROOT || process.cwd();
  const handler = await loadHandler(appRoot, process.env._HANDLER || '');
  runtime = new Runtime(client, handler);
  runtime.scheduleNext();
}

main().catch((error) => {
  // A failed load: as on Lambda, reported as an uncaught exception of init.
  process.emit('uncaughtException', error);
});
