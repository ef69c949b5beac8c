/**
 * DynamoDB-API (dynalite) and Kinesis-API (kinesalite) emulators on 127.0.0.1, random ports.
 *
 * Each emulator runs in a child process of its own, so its CPU work does not share the event
 * loop with the broker, the rules engine and the simulated devices: on a 2-core machine that is
 * what keeps the functions' connect and request timeouts meaningful under an enrollment burst.
 * Both are in-memory; a child exits when the lab stops it or when its parent goes away (its
 * stdin closes).
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface Emulators {
  dynamodb: string;
  kinesis: string;
  stop(): Promise<void>;
}

export interface EmulatorProcess {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

const FACTORIES = {
  dynalite: { module: 'dynalite', options: { createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 } },
  kinesalite: {
    module: 'kinesalite',
    options: { createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 1000 },
  },
} as const;

/** Start one emulator in a child process on `host`, a random port unless `port` is given. */
export async function startEmulatorProcess(
  kind: keyof typeof FACTORIES,
  opts: { host?: string; port?: number } = {},
): Promise<EmulatorProcess> {
  const host = opts.host ?? '127.0.0.1';
  const { module, options } = FACTORIES[kind];
  const script = [
    `const server = require(${JSON.stringify(require.resolve(module))})(${JSON.stringify(options)});`,
    `server.on('error', (e) => { process.stderr.write(String(e && e.message) + '\\n'); process.exit(1); });`,
    `server.listen(${opts.port ?? 0}, ${JSON.stringify(host)}, () =>`,
    `  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\\n'));`,
    // Exit with the parent: its end of stdin closes when it exits, however it exits.
    `process.stdin.on('end', () => process.exit(0)); process.stdin.resume();`,
  ].join('\n');
  const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.once('error', reject);
    child.once('exit', (code) =>
      reject(new Error(`${kind} exited before listening (code ${code}): ${stderr.trim() || 'no output'}`)),
    );
    child.stdout?.on('data', (b: Buffer) => {
      out += b.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve((JSON.parse(out.slice(0, nl)) as { port: number }).port);
    });
  });
  child.removeAllListeners('exit');
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    endpoint: `http://${host}:${port}`,
    child,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

export async function startEmulators(
  opts: { host?: string; dynamodbPort?: number; kinesisPort?: number } = {},
): Promise<Emulators> {
  const started = await Promise.allSettled([
    startEmulatorProcess('dynalite', { host: opts.host, port: opts.dynamodbPort }),
    startEmulatorProcess('kinesalite', { host: opts.host, port: opts.kinesisPort }),
  ]);
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) {
    await Promise.all(started.map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
    throw (failed as PromiseRejectedResult).reason;
  }
  const [ddb, kin] = started.map((r) => (r as PromiseFulfilledResult<EmulatorProcess>).value);
  return {
    dynamodb: ddb.endpoint,
    kinesis: kin.endpoint,
    stop: async () => {
      await Promise.all([ddb.stop(), kin.stop()]);
    },
  };
}
