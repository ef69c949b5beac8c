/**
 * Runs Lambda functions from their bundled cdk.out assets, unchanged.
 *
 * Each function gets its own `worker_threads` Worker (its own `process.env`, module cache and
 * event loop), started on the first invocation (the cold start). Several invocations may be in
 * flight in one worker at once, as Node handlers are async. The environment holds the
 * function's resolved variables, the Lambda runtime variables Powertools reads, dummy
 * credentials and `AWS_ENDPOINT_URL_*` pointing at the lab.
 *
 * The configured Timeout is enforced: the invocation fails with `Sandbox.Timedout` and, as in
 * Lambda, the execution environment is discarded (the worker is retired; invocations already
 * in flight in it may finish, new ones start a fresh worker). Handler errors come back as
 * {@link LambdaFunctionError} with Lambda's `errorType` / `errorMessage`.
 *
 * Logs: every line the function writes goes to `<logDir>/<functionName>.log` and to `onLog`,
 * framed by Lambda's START / END / REPORT lines.
 */
import { randomUUID } from 'node:crypto';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { LAMBDA_WORKER_SOURCE } from './lambda-worker-source';

export interface LambdaFunctionSpec {
  logicalId: string;
  functionName: string;
  functionArn: string;
  /** Directory holding the unpacked code (the cdk.out asset directory). */
  codeDir: string;
  /** `file.export`, e.g. `index.handler`. */
  handler: string;
  runtime?: string;
  timeoutSec: number;
  memoryMb: number;
  /** The function's resolved Environment.Variables. */
  environment: Record<string, string>;
}

export interface LambdaRunnerOptions {
  region: string;
  accountId: string;
  /** AWS_ENDPOINT_URL_<SERVICE> values, keyed by service suffix (DYNAMODB, KINESIS, IOT, …). */
  endpoints: Record<string, string>;
  /** Directory for per-function log files (created); omit to keep logs in memory/callback only. */
  logDir?: string;
  onLog?: (functionName: string, line: string) => void;
  /** Extra variables for every function (after the defaults, before the function's own). */
  extraEnv?: Record<string, string>;
  /**
   * Invocations of one function that run at the same time in its worker; more wait for a slot
   * before they start (their timeout starts when they do). Lambda runs one event per execution
   * environment; capping the executions that share one worker's event loop keeps the SDK's
   * connect and request timeouts inside the handlers meaningful under a burst. @default 4
   */
  maxConcurrentPerFunction?: number;
}

/** An invocation that ended in a function error (what Lambda reports as FunctionError). */
export class LambdaFunctionError extends Error {
  constructor(
    readonly functionName: string,
    readonly errorType: string,
    readonly errorMessage: string,
    readonly trace?: string[],
  ) {
    super(`${functionName}: ${errorType}: ${errorMessage}`);
    this.name = 'LambdaFunctionError';
  }
}

/** The invoke call itself failed (unknown function, …), as a Lambda service error would. */
export class LambdaServiceError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
    this.name = 'LambdaServiceError';
  }
}

export interface FunctionStats {
  functionName: string;
  invocations: number;
  errors: number;
  timeouts: number;
  coldStarts: number;
  inFlight: number;
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
  requestId: string;
  started: number;
}

interface Sandbox {
  worker: Worker;
  pending: Map<number, Pending>;
  retired: boolean;
}

class FunctionHost {
  private sandbox?: Sandbox;
  private nextId = 1;
  /** Invocations started in the worker, and those waiting for a slot (resolve true = go). */
  private running = 0;
  private readonly waiting: ((go: boolean) => void)[] = [];
  readonly stats: FunctionStats;
  private readonly log?: WriteStream;

  constructor(
    readonly spec: LambdaFunctionSpec,
    private readonly env: Record<string, string>,
    private readonly opts: LambdaRunnerOptions,
  ) {
    this.stats = {
      functionName: spec.functionName,
      invocations: 0,
      errors: 0,
      timeouts: 0,
      coldStarts: 0,
      inFlight: 0,
    };
    if (opts.logDir) {
      mkdirSync(opts.logDir, { recursive: true });
      this.log = createWriteStream(join(opts.logDir, `${spec.functionName}.log`), { flags: 'a' });
    }
  }

  private emit(line: string): void {
    this.log?.write(`${line}\n`);
    this.opts.onLog?.(this.spec.functionName, line);
  }

  /** Split text chunks into log lines; `flush()` emits a trailing partial line. */
  private lineSplitter(): { push(chunk: string): void; flush(): void } {
    let buf = '';
    return {
      push: (chunk) => {
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          this.emit(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
        }
      },
      flush: () => {
        if (buf) this.emit(buf);
        buf = '';
      },
    };
  }

  private pipe(stream: NodeJS.ReadableStream | null): void {
    if (!stream) return;
    const lines = this.lineSplitter();
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => lines.push(chunk));
    stream.on('end', () => lines.flush());
  }

  private start(): Sandbox {
    const s = this.spec;
    const worker = new Worker(LAMBDA_WORKER_SOURCE, {
      eval: true,
      env: this.env,
      stdout: true,
      stderr: true,
      workerData: {
        codeDir: s.codeDir,
        handler: s.handler,
        functionName: s.functionName,
        functionArn: s.functionArn,
        memoryMb: s.memoryMb,
        logGroupName: this.env.AWS_LAMBDA_LOG_GROUP_NAME,
        logStreamName: this.env.AWS_LAMBDA_LOG_STREAM_NAME,
      },
    });
    worker.unref();
    const sandbox: Sandbox = { worker, pending: new Map(), retired: false };
    // Output written before the worker's stdout override (none today) still arrives here.
    this.pipe(worker.stdout);
    this.pipe(worker.stderr);
    const functionOutput = this.lineSplitter();
    worker.on('exit', () => functionOutput.flush());
    worker.on(
      'message',
      (msg: {
        type: string;
        id: number;
        ok: boolean;
        json?: string;
        text?: string;
        error?: { errorType: string; errorMessage: string; trace?: string[] };
      }) => {
        if (msg.type === 'log') {
          functionOutput.push(msg.text ?? '');
          return;
        }
        if (msg.type !== 'result') return;
        const p = sandbox.pending.get(msg.id);
        if (!p) return; // timed out already
        if (msg.ok) {
          this.finish(sandbox, msg.id, p);
          p.resolve(JSON.parse(msg.json ?? 'null'));
        } else {
          const e = msg.error ?? { errorType: 'Error', errorMessage: 'unknown error' };
          this.stats.errors++;
          this.emit(
            `${new Date().toISOString()}\t${p.requestId}\tERROR\tInvoke Error \t${JSON.stringify(e)}`,
          );
          this.finish(sandbox, msg.id, p);
          p.reject(new LambdaFunctionError(s.functionName, e.errorType, e.errorMessage, e.trace));
        }
      },
    );
    const fail = (errorType: string, errorMessage: string): void => {
      for (const [id, p] of sandbox.pending) {
        this.finish(sandbox, id, p);
        this.stats.errors++;
        p.reject(new LambdaFunctionError(s.functionName, errorType, errorMessage));
      }
      if (this.sandbox === sandbox) this.sandbox = undefined;
    };
    worker.on('error', (err) =>
      fail('Runtime.ExitError', `RequestId: the runtime exited with an uncaught error: ${err.message}`),
    );
    worker.on('exit', (code) => fail('Runtime.ExitError', `Runtime exited with status ${code}`));
    this.stats.coldStarts++;
    return sandbox;
  }

  private finish(sandbox: Sandbox, id: number, p: Pending): void {
    clearTimeout(p.timer);
    sandbox.pending.delete(id);
    this.stats.inFlight--;
    this.releaseSlot();
    this.emit(`END RequestId: ${p.requestId}`);
    this.emit(
      `REPORT RequestId: ${p.requestId}\tDuration: ${(Date.now() - p.started).toFixed(2)} ms\tMemory Size: ${this.spec.memoryMb} MB`,
    );
    if (sandbox.retired && sandbox.pending.size === 0) void sandbox.worker.terminate();
  }

  private acquireSlot(): Promise<boolean> {
    if (this.running < (this.opts.maxConcurrentPerFunction ?? 4)) {
      this.running++;
      return Promise.resolve(true);
    }
    return new Promise((go) => this.waiting.push(go));
  }

  private releaseSlot(): void {
    const next = this.waiting.shift();
    if (next) next(true);
    else this.running--;
  }

  async invoke(event: unknown): Promise<unknown> {
    this.stats.invocations++;
    this.stats.inFlight++;
    if (!(await this.acquireSlot())) {
      this.stats.inFlight--;
      throw new LambdaServiceError('ServiceUnavailable', 'the lab is stopping');
    }
    return this.dispatch(event);
  }

  private dispatch(event: unknown): Promise<unknown> {
    if (!this.sandbox) this.sandbox = this.start();
    const sandbox = this.sandbox;
    const id = this.nextId++;
    const requestId = randomUUID();
    const timeoutMs = this.spec.timeoutSec * 1000;
    const started = Date.now();
    this.emit(`START RequestId: ${requestId} Version: $LATEST`);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const p = sandbox.pending.get(id);
        if (!p) return;
        this.stats.timeouts++;
        this.stats.errors++;
        const msg = `${new Date().toISOString()} ${requestId} Task timed out after ${this.spec.timeoutSec.toFixed(2)} seconds`;
        this.emit(msg);
        // Lambda discards the execution environment after a timeout.
        sandbox.retired = true;
        if (this.sandbox === sandbox) this.sandbox = undefined;
        this.finish(sandbox, id, p);
        reject(new LambdaFunctionError(this.spec.functionName, 'Sandbox.Timedout', msg));
      }, timeoutMs);
      timer.unref();
      sandbox.pending.set(id, { resolve, reject, timer, requestId, started });
      const traceId = `Root=1-${Math.floor(started / 1000).toString(16)}-${randomUUID().replace(/-/g, '').slice(0, 24)};Sampled=0`;
      sandbox.worker.postMessage({
        type: 'invoke',
        id,
        event,
        deadline: started + timeoutMs,
        requestId,
        traceId,
      });
    });
  }

  async stop(): Promise<void> {
    for (const go of this.waiting.splice(0)) go(false);
    const s = this.sandbox;
    this.sandbox = undefined;
    if (s) {
      s.worker.removeAllListeners('exit');
      for (const [id, p] of s.pending) {
        this.finish(s, id, p);
        p.reject(new LambdaServiceError('ServiceUnavailable', 'the lab is stopping'));
      }
      await s.worker.terminate();
    }
    await new Promise<void>((resolve) => (this.log ? this.log.end(() => resolve()) : resolve()));
  }
}

/** Lambda runtime environment for a function (exported for tests and the summary). */
export function lambdaEnvironment(
  spec: LambdaFunctionSpec,
  opts: LambdaRunnerOptions,
): Record<string, string> {
  const endpointVars = Object.fromEntries(
    Object.entries(opts.endpoints).map(([svc, url]) => [`AWS_ENDPOINT_URL_${svc.toUpperCase()}`, url]),
  );
  const runtime = spec.runtime ?? 'nodejs22.x';
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    LANG: 'en_US.UTF-8',
    TZ: ':UTC',
    NODE_OPTIONS: '',
    AWS_REGION: opts.region,
    AWS_DEFAULT_REGION: opts.region,
    AWS_ACCESS_KEY_ID: 'ASIALABLOCALLAB00000',
    AWS_SECRET_ACCESS_KEY: 'lab-local-secret-access-key',
    AWS_SESSION_TOKEN: 'lab-local-session-token',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    AWS_EXECUTION_ENV: `AWS_Lambda_${runtime}`,
    AWS_LAMBDA_FUNCTION_NAME: spec.functionName,
    AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(spec.memoryMb),
    AWS_LAMBDA_FUNCTION_TIMEOUT: String(spec.timeoutSec),
    AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${spec.functionName}`,
    AWS_LAMBDA_LOG_STREAM_NAME: `${new Date().toISOString().slice(0, 10).replace(/-/g, '/')}/[$LATEST]${randomUUID().replace(/-/g, '')}`,
    AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
    LAMBDA_TASK_ROOT: spec.codeDir,
    LAMBDA_RUNTIME_DIR: spec.codeDir,
    ...endpointVars,
    ...(opts.extraEnv ?? {}),
    ...spec.environment,
  };
}

/** A function reference resolved to its function, with the qualifier it was addressed by. */
export interface ResolvedFunction {
  /** Unqualified function ARN (the key of the function in the runner). */
  functionArn: string;
  /** Version number or alias name; undefined for the unqualified function (or `$LATEST`). */
  qualifier?: string;
  /** `functionArn` or `functionArn:qualifier`: what a resource-based policy is attached to. */
  qualifiedArn: string;
}

const QUALIFIED_ARN = /^(arn:[^:]+:lambda:[^:]+:[^:]+:function:[^:]+)(?::([^:]+))?$/;
const QUALIFIED_NAME = /^([^:]+):([^:]+)$/;

export class LambdaRunner {
  private readonly hosts = new Map<string, FunctionHost>();
  private readonly aliases = new Map<string, string>();
  /** Declared versions and aliases per function ARN (what a qualified reference may name). */
  private readonly qualifiers = new Map<string, Set<string>>();

  private readonly opts: LambdaRunnerOptions;
  private readonly logListeners = new Set<(functionName: string, line: string) => void>();

  constructor(opts: LambdaRunnerOptions) {
    const own = opts.onLog;
    this.opts = {
      ...opts,
      onLog: (functionName, line) => {
        own?.(functionName, line);
        for (const listener of this.logListeners) listener(functionName, line);
      },
    };
  }

  /** Also send every function log line to `listener` (the lab reads EMF documents this way); returns the unsubscribe. */
  addLogListener(listener: (functionName: string, line: string) => void): () => void {
    this.logListeners.add(listener);
    return () => this.logListeners.delete(listener);
  }

  /** Add a function; it is addressable by ARN, name and logical id. */
  register(spec: LambdaFunctionSpec): void {
    const host = new FunctionHost(spec, lambdaEnvironment(spec, this.opts), this.opts);
    this.hosts.set(spec.functionArn, host);
    for (const alias of [spec.functionName, spec.logicalId, spec.functionArn])
      this.aliases.set(alias, spec.functionArn);
  }

  /**
   * Declare a version (`"1"`) or alias (`"live"`) of a registered function, so that
   * `<function ARN>:<qualifier>` and `<name>:<qualifier>` resolve to it. Returns the qualified
   * ARN, or undefined when the function is unknown.
   */
  addQualifier(functionRef: string, qualifier: string): string | undefined {
    const functionArn = this.resolve(functionRef);
    if (!functionArn) return undefined;
    const known = this.qualifiers.get(functionArn) ?? new Set<string>();
    known.add(qualifier);
    this.qualifiers.set(functionArn, known);
    return `${functionArn}:${qualifier}`;
  }

  /**
   * The function a reference names: an ARN (unqualified, `$LATEST`, or a declared version or
   * alias), a function name (optionally `name:qualifier`) or a logical id. A qualifier the
   * stack does not declare does not resolve, as Lambda answers ResourceNotFound for it.
   */
  resolveQualified(ref: string): ResolvedFunction | undefined {
    const direct = this.aliases.get(ref);
    if (direct) return { functionArn: direct, qualifiedArn: direct };
    const m = QUALIFIED_ARN.exec(ref) ?? QUALIFIED_NAME.exec(ref);
    if (!m) return undefined;
    const functionArn = this.aliases.get(m[1]);
    if (!functionArn) return undefined;
    const qualifier = m[2];
    if (qualifier === undefined || qualifier === '$LATEST') return { functionArn, qualifiedArn: functionArn };
    if (!this.qualifiers.get(functionArn)?.has(qualifier)) return undefined;
    return { functionArn, qualifier, qualifiedArn: `${functionArn}:${qualifier}` };
  }

  /** Unqualified ARN of the function a reference names (see resolveQualified); undefined when unknown. */
  resolve(ref: string): string | undefined {
    return this.resolveQualified(ref)?.functionArn;
  }

  has(ref: string): boolean {
    return this.resolve(ref) !== undefined;
  }

  spec(ref: string): LambdaFunctionSpec | undefined {
    const arn = this.resolve(ref);
    return arn ? this.hosts.get(arn)?.spec : undefined;
  }

  functions(): LambdaFunctionSpec[] {
    return [...this.hosts.values()].map((h) => h.spec);
  }

  /** Invoke synchronously (RequestResponse); rejects with LambdaFunctionError or LambdaServiceError. */
  invoke(ref: string, event: unknown): Promise<unknown> {
    const arn = this.resolve(ref);
    if (!arn)
      return Promise.reject(
        new LambdaServiceError('ResourceNotFoundException', `Function not found: ${ref}`),
      );
    return (this.hosts.get(arn) as FunctionHost).invoke(event);
  }

  stats(): FunctionStats[] {
    return [...this.hosts.values()].map((h) => ({ ...h.stats }));
  }

  async stop(): Promise<void> {
    await Promise.all([...this.hosts.values()].map((h) => h.stop()));
  }
}
