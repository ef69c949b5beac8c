/**
 * Source of the child process that hosts one emulator (dynalite, kinesalite or s3rver), run with
 * `node -e <source> <spec JSON>`. It is a string so the child runs unchanged under tsx, ts-jest
 * and plain node.
 *
 * Spec: { kind, modulePath, options, host, port, directory?, accountModulePath?, storeModulePath? }.
 * Child → parent (IPC): { type: 'listening', port } once, then { type: 'ack', id } per control.
 * Parent → child (IPC): { type: 'control', id, op: 'pause' | 'resume' }.
 *
 * The gate: while paused, the server answers nothing. Requests that arrive are held; on resume
 * the held requests whose client is still waiting run, and those whose client gave up (closed
 * the connection, or whose `x-lab-deadline` has passed) are dropped without effect, as if the
 * network had lost them. That is how the lab makes an endpoint "stop answering and come back
 * with its data".
 *
 * s3rver fixes (see emulators.ts): any access key is accepted (signatures are not checked, as
 * s3rver does not check SigV4 anyway), and an `aws-chunked` request body (what the AWS SDK sends
 * for a streaming upload with a trailing checksum) is decoded before s3rver stores it. The child
 * runs with --openssl-legacy-provider so s3rver's DES-based ListObjectsV2 continuation tokens work.
 * A listing with a delimiter is grouped here, as s3rver's own finds no common prefixes.
 */
export const EMULATOR_CHILD_SOURCE = String.raw`
'use strict';
const { Transform } = require('node:stream');
const spec = JSON.parse(process.argv[1]);
const gate = { paused: false, held: [] };

function send(message) {
  if (process.connected) process.send(message);
}

// Exit with the parent: its end of stdin and the IPC channel close when it exits, however it exits.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
process.on('disconnect', () => process.exit(0));

function installGate(server) {
  const listeners = server.listeners('request');
  server.removeAllListeners('request');
  const forward = (req, res) => {
    // A lab client's deadline (see kinesis-client.ts): past it, the client is giving up, so the
    // request is left unanswered and unapplied (the client times out and closes it) rather than
    // applied too late to be answered.
    const deadline = Number(req.headers['x-lab-deadline']);
    if (deadline && Date.now() > deadline) {
      req.resume();
      return;
    }
    for (const l of listeners) l.call(server, req, res);
  };
  server.on('request', (req, res) => {
    if (gate.paused) gate.held.push([req, res]);
    else forward(req, res);
  });
  process.on('message', (m) => {
    if (!m || m.type !== 'control') return;
    if (m.op === 'pause') gate.paused = true;
    if (m.op === 'resume') {
      gate.paused = false;
      for (const [req, res] of gate.held.splice(0)) {
        if (req.destroyed || res.destroyed || !req.socket || req.socket.destroyed) continue;
        forward(req, res);
      }
    }
    send({ type: 'ack', id: m.id });
  });
}

function listen(server) {
  server.on('error', (e) => {
    process.stderr.write(String(e && e.message) + '\n');
    process.exit(1);
  });
  installGate(server);
  server.listen(spec.port, spec.host, () => send({ type: 'listening', port: server.address().port }));
}

// aws-chunked: <hex size>[;chunk-signature=...]\r\n<data>\r\n ... 0[;...]\r\n<trailers>\r\n\r\n
class ChunkDecoder extends Transform {
  constructor() {
    super();
    this.state = 'size';
    this.line = '';
    this.remaining = 0;
  }
  _transform(chunk, _enc, done) {
    let i = 0;
    while (i < chunk.length) {
      if (this.state === 'size') {
        const nl = chunk.indexOf(10, i);
        if (nl < 0) {
          this.line += chunk.toString('latin1', i);
          break;
        }
        this.line += chunk.toString('latin1', i, nl);
        i = nl + 1;
        const size = parseInt(this.line.replace(/\r$/, '').split(';')[0], 16);
        this.line = '';
        if (!(size > 0)) this.state = 'trailer';
        else {
          this.remaining = size;
          this.state = 'data';
        }
      } else if (this.state === 'data') {
        const take = Math.min(this.remaining, chunk.length - i);
        this.push(chunk.subarray(i, i + take));
        i += take;
        this.remaining -= take;
        if (this.remaining === 0) {
          this.state = 'crlf';
          this.remaining = 2;
        }
      } else if (this.state === 'crlf') {
        const skip = Math.min(this.remaining, chunk.length - i);
        i += skip;
        this.remaining -= skip;
        if (this.remaining === 0) this.state = 'size';
      } else break; // trailer: checksums the lab does not verify
    }
    done();
  }
}

function awsChunked(ctx, next) {
  const req = ctx.req;
  const encodings = String(req.headers['content-encoding'] || '')
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  const sha = String(req.headers['x-amz-content-sha256'] || '');
  if (encodings.includes('aws-chunked') || sha.startsWith('STREAMING-')) {
    const rest = encodings.filter((e) => e !== 'aws-chunked');
    if (rest.length) req.headers['content-encoding'] = rest.join(',');
    else delete req.headers['content-encoding'];
    if (req.headers['x-amz-decoded-content-length'] !== undefined)
      req.headers['content-length'] = req.headers['x-amz-decoded-content-length'];
    delete req.headers['x-amz-trailer'];
    const decoded = req.pipe(new ChunkDecoder());
    decoded.headers = req.headers;
    ctx.req = decoded;
  }
  return next();
}

if (spec.kind === 's3rver') {
  const S3rver = require(spec.modulePath);
  const Account = require(spec.accountModulePath);
  const known = Account.registry.get.bind(Account.registry);
  Account.registry.get = (key) => known(key) || Account.DUMMY_ACCOUNT;
  // With a delimiter, s3rver prunes the folders below the prefix before it has seen their
  // keys, so it finds no common prefixes: list without one and group here (all keys, no MaxKeys).
  const Store = require(spec.storeModulePath);
  const listObjects = Store.prototype.listObjects;
  Store.prototype.listObjects = async function (bucket, options) {
    if (!options.delimiter) return listObjects.call(this, bucket, options);
    const { delimiter, prefix = '' } = options;
    const all = await listObjects.call(this, bucket, { prefix, startAfter: options.startAfter });
    const objects = [];
    const prefixes = new Set();
    for (const o of all.objects) {
      const idx = o.key.slice(prefix.length).indexOf(delimiter);
      if (idx === -1) objects.push(o);
      else prefixes.add(o.key.slice(0, prefix.length + idx + delimiter.length));
    }
    return { objects, commonPrefixes: [...prefixes].sort(), isTruncated: false };
  };
  const app = new S3rver({
    address: spec.host,
    port: spec.port,
    silent: true,
    directory: spec.directory,
    allowMismatchedSignatures: true,
    vhostBuckets: false,
    resetOnClose: false,
  });
  app.middleware.unshift(awsChunked);
  const server = require('node:http').createServer(app.callback());
  listen(server);
} else {
  listen(require(spec.modulePath)(spec.options));
}
`;
