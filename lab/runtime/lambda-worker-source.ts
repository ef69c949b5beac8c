/**
 * Source of the worker that hosts one Lambda function (run with `new Worker(src, { eval: true })`).
 * It is a string so the worker runs unchanged under tsx, ts-jest and plain node: the function
 * code it loads is the bundled JavaScript asset from cdk.out.
 *
 * Protocol (parent → worker): { type: 'invoke', id, event, deadline, requestId, traceId }.
 * Worker → parent: { type: 'result', id, ok: true, json } | { type: 'result', id, ok: false, error }
 * where error is Lambda's { errorType, errorMessage, trace }, and { type: 'log', text } for
 * everything the function writes to stdout or stderr.
 */
export const LAMBDA_WORKER_SOURCE = String.raw`
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const path = require('node:path');
const { pathToFileURL } = require('node:url');
const { codeDir, handler, functionName, functionArn, memoryMb, logGroupName, logStreamName } = workerData;

// Function output travels on the message port, like results, so every line a handler logs
// reaches the parent before the result of the same invocation does.
for (const name of ['stdout', 'stderr']) {
  process[name].write = (chunk, encoding, cb) => {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString(typeof encoding === 'string' ? encoding : 'utf8');
    parentPort.postMessage({ type: 'log', text });
    const done = typeof encoding === 'function' ? encoding : cb;
    if (typeof done === 'function') done();
    return true;
  };
}

function toError(err, fallbackType) {
  if (err instanceof Error) {
    return { errorType: err.name && err.name !== 'Error' ? err.name : (err.constructor && err.constructor.name) || fallbackType, errorMessage: err.message, trace: String(err.stack || '').split('\n') };
  }
  return { errorType: fallbackType, errorMessage: typeof err === 'string' ? err : JSON.stringify(err) };
}

const dot = handler.lastIndexOf('.');
const modulePath = path.resolve(codeDir, handler.slice(0, dot));
const exportName = handler.slice(dot + 1);

async function loadModule() {
  const candidates = ['.js', '.cjs', '.mjs', ''];
  let file;
  for (const ext of candidates) {
    try { require('node:fs').accessSync(modulePath + ext); file = modulePath + ext; break; } catch (_) { /* next */ }
  }
  if (!file) {
    const e = new Error('Cannot find module ' + JSON.stringify(handler.slice(0, dot)) + ' in ' + codeDir);
    e.name = 'Runtime.ImportModuleError';
    throw e;
  }
  let mod;
  try {
    mod = file.endsWith('.mjs') ? await import(pathToFileURL(file).href) : require(file);
  } catch (err) {
    const e = new Error(String(err && err.message || err));
    e.name = 'Runtime.ImportModuleError';
    e.stack = err && err.stack;
    throw e;
  }
  const fn = mod[exportName] || (mod.default && mod.default[exportName]);
  if (typeof fn !== 'function') {
    const e = new Error(handler + ' is undefined or not exported');
    e.name = 'Runtime.HandlerNotFound';
    throw e;
  }
  return fn;
}

const loading = loadModule();
loading.catch(() => undefined);

function invokeHandler(fn, event, context) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const callback = (err, result) => {
      if (settled) return;
      settled = true;
      if (err) reject(err); else resolve(result);
    };
    context.done = callback;
    context.succeed = (r) => callback(null, r);
    context.fail = (e) => callback(e || new Error('failed'));
    try {
      const out = fn(event, context, callback);
      if (out && typeof out.then === 'function') out.then((r) => callback(null, r), (e) => callback(e));
      else if (fn.length < 3) callback(null, out);
    } catch (err) {
      callback(err);
    }
  });
}

parentPort.on('message', async (msg) => {
  if (!msg || msg.type !== 'invoke') return;
  const { id, event, deadline, requestId, traceId } = msg;
  if (traceId) process.env._X_AMZN_TRACE_ID = traceId;
  const context = {
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: functionArn,
    memoryLimitInMB: String(memoryMb),
    awsRequestId: requestId,
    logGroupName,
    logStreamName,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
  try {
    const fn = await loading;
    const result = await invokeHandler(fn, event, context);
    parentPort.postMessage({ type: 'result', id, ok: true, json: result === undefined ? 'null' : JSON.stringify(result) });
  } catch (err) {
    parentPort.postMessage({ type: 'result', id, ok: false, error: toError(err, 'Error') });
  }
});
parentPort.postMessage({ type: 'ready' });
`;
