/**
 * DynamoDB-API (dynalite), Kinesis-API (kinesalite) and S3-API (s3rver) emulators on 127.0.0.1,
 * random ports.
 *
 * Each emulator runs in a child process of its own (./emulator-child-source.ts), so its CPU work
 * does not share the event loop with the broker, the rules engine and the simulated devices: on a
 * 2-core machine that is what keeps the functions' connect and request timeouts meaningful under
 * an enrollment burst. dynalite and kinesalite are in memory; s3rver keeps the buckets as files
 * under the directory it is given (`<labDir>/s3/`, wiped at start). A child exits when the lab
 * stops it or when its parent goes away (its stdin and IPC channel close).
 *
 * Fault injection: {@link EmulatorProcess.control} pauses an emulator (it answers nothing; the
 * requests that reach it are held) and resumes it (held requests whose client still waits are
 * served; those whose client gave up are dropped unapplied). The lab uses it for Kinesis.
 *
 * s3rver workarounds (3.7.1, the lab's S3 emulator):
 * - any access key is accepted: the lab's and the functions' dummy credentials differ, and s3rver
 *   knows one key pair only (it does not verify SigV4 signatures in any case);
 * - a request body in `aws-chunked` encoding (the AWS SDK's streaming upload with a trailing
 *   checksum, used when the body is a stream) is decoded before s3rver stores it; s3rver would
 *   store the chunk framing as the object;
 * - ListObjectsV2 continuation tokens are DES-encrypted by s3rver, which OpenSSL 3 only offers
 *   with its legacy provider: the s3rver child runs with `--openssl-legacy-provider`;
 * - ListObjectsV2 with a Delimiter: s3rver finds no CommonPrefixes (it skips the folders below
 *   the prefix before reading their keys); the child groups the keys itself. Such a listing
 *   returns every key and prefix in one page (MaxKeys is not applied with a Delimiter).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EMULATOR_CHILD_SOURCE } from './emulator-child-source';

export type EmulatorKind = 'dynalite' | 'kinesalite' | 's3rver';

export interface EmulatorProcess {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  child: ChildProcess;
  /** Pause (answer nothing, hold requests) or resume the emulator; resolves once it applied. */
  control(op: 'pause' | 'resume'): Promise<void>;
  stop(): Promise<void>;
}

export interface Emulators {
  dynamodb: string;
  kinesis: string;
  s3: string;
  /** Where s3rver keeps the buckets (one folder per bucket). */
  s3Directory: string;
  faults: {
    /** Kinesis stops answering; what reaches it is held (see {@link EmulatorProcess.control}). */
    pauseKinesis(): Promise<void>;
    /** Kinesis answers again, with its data. */
    resumeKinesis(): Promise<void>;
    kinesisPaused(): boolean;
  };
  stop(): Promise<void>;
}

const MODULES: Record<
  EmulatorKind,
  { module: string; options?: Record<string, unknown>; execArgv?: string[] }
> = {
  dynalite: { module: 'dynalite', options: { createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 } },
  kinesalite: {
    module: 'kinesalite',
    options: { createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 1000 },
  },
  s3rver: { module: 's3rver', execArgv: ['--openssl-legacy-provider'] },
};

/**
 * Start one emulator in a child process on `host`, a random port unless `port` is given.
 * s3rver needs `directory` (created if missing; its content is kept).
 */
export async function startEmulatorProcess(
  kind: EmulatorKind,
  opts: { host?: string; port?: number; directory?: string } = {},
): Promise<EmulatorProcess> {
  const host = opts.host ?? '127.0.0.1';
  const { module, options, execArgv = [] } = MODULES[kind];
  if (kind === 's3rver') {
    if (!opts.directory) throw new Error('s3rver needs a directory for its buckets');
    mkdirSync(opts.directory, { recursive: true });
  }
  const spec = {
    kind,
    modulePath: require.resolve(module),
    accountModulePath: kind === 's3rver' ? require.resolve('s3rver/lib/models/account') : undefined,
    storeModulePath: kind === 's3rver' ? require.resolve('s3rver/lib/stores/filesystem') : undefined,
    options: options ?? {},
    host,
    port: opts.port ?? 0,
    directory: opts.directory,
  };
  const child = spawn(process.execPath, [...execArgv, '-e', EMULATOR_CHILD_SOURCE, JSON.stringify(spec)], {
    stdio: ['pipe', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
  const acks = new Map<number, () => void>();
  let nextId = 1;
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) =>
      reject(new Error(`${kind} exited before listening (code ${code}): ${stderr.trim() || 'no output'}`)),
    );
    child.on('message', (m: { type?: string; port?: number; id?: number }) => {
      if (m?.type === 'listening' && typeof m.port === 'number') resolve(m.port);
      if (m?.type === 'ack' && typeof m.id === 'number') {
        acks.get(m.id)?.();
        acks.delete(m.id);
      }
    });
  });
  child.removeAllListeners('exit');
  child.removeAllListeners('error');
  child.on('error', () => undefined);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const alive = (): boolean => child.exitCode === null && child.signalCode === null;
  return {
    endpoint: `http://${host}:${port}`,
    child,
    control: (op) => {
      if (!alive() || !child.connected) return Promise.reject(new Error(`${kind} is not running`));
      const id = nextId++;
      return new Promise<void>((resolve) => {
        acks.set(id, resolve);
        child.send({ type: 'control', id, op });
      });
    },
    stop: async () => {
      if (alive()) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

export async function startEmulators(
  opts: {
    host?: string;
    dynamodbPort?: number;
    kinesisPort?: number;
    s3Port?: number;
    /** Folder standing for the S3 buckets; wiped at start. @default a new temporary folder */
    s3Directory?: string;
  } = {},
): Promise<Emulators> {
  const s3Directory = opts.s3Directory ?? mkdtempSync(join(tmpdir(), 'lab-s3-'));
  rmSync(s3Directory, { recursive: true, force: true });
  const started = await Promise.allSettled([
    startEmulatorProcess('dynalite', { host: opts.host, port: opts.dynamodbPort }),
    startEmulatorProcess('kinesalite', { host: opts.host, port: opts.kinesisPort }),
    startEmulatorProcess('s3rver', { host: opts.host, port: opts.s3Port, directory: s3Directory }),
  ]);
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) {
    await Promise.all(started.map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
    throw (failed as PromiseRejectedResult).reason;
  }
  const [ddb, kin, s3] = started.map((r) => (r as PromiseFulfilledResult<EmulatorProcess>).value);
  let kinesisPaused = false;
  return {
    dynamodb: ddb.endpoint,
    kinesis: kin.endpoint,
    s3: s3.endpoint,
    s3Directory,
    faults: {
      pauseKinesis: async () => {
        await kin.control('pause');
        kinesisPaused = true;
      },
      resumeKinesis: async () => {
        await kin.control('resume');
        kinesisPaused = false;
      },
      kinesisPaused: () => kinesisPaused,
    },
    stop: async () => {
      await Promise.all([ddb.stop(), kin.stop(), s3.stop()]);
    },
  };
}
