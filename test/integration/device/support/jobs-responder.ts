/**
 * A scripted AWS IoT Jobs device API on the lab's MQTT server (mTLS, random loopback port), for
 * the simulator's Jobs client and OTA agent: per thing a list of executions; `start-next`,
 * `<jobId>/get` (and `$next/get`), `<jobId>/update` with `expectedVersion`; `notify-next` to the
 * thing's connection whenever the next pending execution changes. Answers go only to the
 * requesting connection, as AWS IoT does. Force-cancel, the step timer's expiry and a concurrent
 * version bump are scripted by the test (no clocks). Also a loopback http server for images.
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { MqttServer, type Connection } from '../../../../lab/iot/mqtt/server';
import { TestCa, type IssuedPair } from './pki';

/** One execution as the responder keeps it. */
export interface ScriptedExecution {
  jobId: string;
  thingName: string;
  jobDocument: unknown;
  status: string;
  statusDetails?: Record<string, string>;
  versionNumber: number;
  executionNumber: number;
  queuedAt: number;
  startedAt?: number;
  lastUpdatedAt: number;
  /** The step timer the device set last (minutes; undefined when none). */
  stepTimeoutInMinutes?: number;
}

/** One UpdateJobExecution the responder received, with how it answered. */
export interface UpdateCall {
  thing: string;
  jobId: string;
  body: Record<string, unknown>;
  answer: 'accepted' | string;
}

const TOPIC = /^\$aws\/things\/([^/]+)\/jobs\/(start-next|([^/]+)\/(get|update))$/;
const TERMINAL = new Set(['SUCCEEDED', 'FAILED', 'TIMED_OUT', 'REJECTED', 'REMOVED', 'CANCELED']);
const DEVICE_STATUSES = new Set(['IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'REJECTED']);

/** The scripted Jobs service. */
export class ScriptedJobs {
  readonly updates: UpdateCall[] = [];
  readonly notifications: Array<{ thing: string; jobId?: string }> = [];
  readonly startNextCalls: Array<{ thing: string; body: Record<string, unknown> }> = [];
  /** Called after an accepted update (e.g. to force-cancel right after a given step). */
  afterUpdate?: (exec: ScriptedExecution, body: Record<string, unknown>) => void;
  /** Called before an update is judged (e.g. to force-cancel while the device reports SUCCEEDED). */
  beforeUpdate?: (exec: ScriptedExecution, body: Record<string, unknown>) => void;
  private readonly executions = new Map<string, ScriptedExecution[]>();
  private readonly connections = new Map<string, Connection>();
  private clock = 1_700_000_000;

  private constructor(
    readonly ca: TestCa,
    private readonly server: Server,
    private readonly broker: MqttServer,
    readonly port: number,
  ) {}

  /** Starts the broker on a random loopback port. */
  static async start(): Promise<ScriptedJobs> {
    const ca = await TestCa.create();
    const serverPair = await ca.issue('localhost', true);
    const broker: MqttServer = new MqttServer({
      hooks: {
        authenticate: (c) => {
          jobs.connections.set(c.clientId, c);
          return undefined;
        },
        authorizePublish: () => undefined,
        authorizeSubscribe: () => undefined,
        mayReceive: () => true,
        isServiceConsumed: (topic) => topic.startsWith('$aws/'),
        onMessage: (m, from) => {
          if (from) jobs.onPublish(m.topic, m.payload, from);
        },
        onConnected: () => undefined,
        onDisconnected: () => undefined,
      },
    });
    const server = createServer(
      {
        key: serverPair.keyPem,
        cert: serverPair.certPem,
        ca: ca.certPem,
        requestCert: true,
        rejectUnauthorized: true,
        noDelay: true,
      },
      (socket) => broker.handle(socket, socket.remoteAddress ?? 'unknown'),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const jobs: ScriptedJobs = new ScriptedJobs(ca, server, broker, (server.address() as AddressInfo).port);
    return jobs;
  }

  get endpoint(): { host: string; port: number; caPem: string } {
    return { host: '127.0.0.1', port: this.port, caPem: this.ca.certPem };
  }

  /** A device certificate signed by the test CA. */
  device(thing: string): Promise<IssuedPair> {
    return this.ca.issue(thing);
  }

  async stop(): Promise<void> {
    await this.broker.stop();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** The executions of `thing`, oldest first. */
  list(thing: string): ScriptedExecution[] {
    return this.executions.get(thing) ?? [];
  }

  /** The execution of `jobId` on `thing`. */
  execution(thing: string, jobId: string): ScriptedExecution {
    const e = this.list(thing).find((x) => x.jobId === jobId);
    if (!e) throw new Error(`no execution of ${jobId} on ${thing}`);
    return e;
  }

  /** Queues an execution (CreateJob for one thing); notify-next follows if it becomes next. */
  queue(thing: string, jobId: string, jobDocument: unknown): ScriptedExecution {
    return this.change(thing, () => {
      const e: ScriptedExecution = {
        jobId,
        thingName: thing,
        jobDocument,
        status: 'QUEUED',
        versionNumber: 1,
        executionNumber: 1,
        queuedAt: this.tick(),
        lastUpdatedAt: this.clock,
      };
      const list = this.executions.get(thing) ?? [];
      list.push(e);
      this.executions.set(thing, list);
      return e;
    });
  }

  /** CancelJobExecution with force: CANCELED, whatever its state; notify-next follows. */
  forceCancel(thing: string, jobId: string): void {
    this.change(thing, () => this.setTerminal(this.execution(thing, jobId), 'CANCELED'));
  }

  /** The step timer expired: TIMED_OUT; notify-next follows. */
  timeOut(thing: string, jobId: string): void {
    this.change(thing, () => this.setTerminal(this.execution(thing, jobId), 'TIMED_OUT'));
  }

  /** A retry of a FAILED or TIMED_OUT execution: QUEUED again with the next execution number. */
  retry(thing: string, jobId: string): void {
    this.change(thing, () => {
      const e = this.execution(thing, jobId);
      e.status = 'QUEUED';
      e.executionNumber++;
      e.versionNumber = 1;
      delete e.statusDetails;
      delete e.startedAt;
      e.queuedAt = this.tick();
      e.lastUpdatedAt = this.clock;
    });
  }

  /** Someone else changed the execution (its version goes up, its status stays). */
  bumpVersion(thing: string, jobId: string): void {
    const e = this.execution(thing, jobId);
    e.versionNumber++;
    e.lastUpdatedAt = this.tick();
  }

  private tick(): number {
    return ++this.clock;
  }

  private setTerminal(e: ScriptedExecution, status: string): void {
    e.status = status;
    e.versionNumber++;
    e.lastUpdatedAt = this.tick();
    delete e.stepTimeoutInMinutes;
  }

  private next(thing: string): ScriptedExecution | undefined {
    const list = this.list(thing);
    return list.find((e) => e.status === 'IN_PROGRESS') ?? list.find((e) => e.status === 'QUEUED');
  }

  /** Runs `fn`, then sends notify-next when the next execution changed. */
  private change<T>(thing: string, fn: () => T): T {
    const before = this.next(thing)?.jobId;
    const out = fn();
    const after = this.next(thing);
    if (after?.jobId !== before) {
      this.notifications.push({ thing, jobId: after?.jobId });
      this.send(thing, `$aws/things/${thing}/jobs/notify-next`, {
        timestamp: this.clock,
        ...(after ? { execution: this.view(after, true) } : {}),
      });
    }
    return out;
  }

  private view(e: ScriptedExecution, withDocument: boolean): Record<string, unknown> {
    return {
      jobId: e.jobId,
      thingName: e.thingName,
      status: e.status,
      ...(e.statusDetails ? { statusDetails: e.statusDetails } : {}),
      queuedAt: e.queuedAt,
      ...(e.startedAt ? { startedAt: e.startedAt } : {}),
      lastUpdatedAt: e.lastUpdatedAt,
      versionNumber: e.versionNumber,
      executionNumber: e.executionNumber,
      ...(withDocument ? { jobDocument: e.jobDocument } : {}),
    };
  }

  private send(thing: string, topic: string, body: unknown): void {
    const c = this.connections.get(thing);
    if (c)
      this.broker.sendTo(c, { topic, payload: Buffer.from(JSON.stringify(body)), qos: 0, retain: false });
  }

  private onPublish(topic: string, payload: Buffer, from: Connection): void {
    const m = TOPIC.exec(topic);
    if (!m || m[1] !== from.clientId) return;
    const thing = m[1];
    const body = payload.length ? (JSON.parse(payload.toString()) as Record<string, unknown>) : {};
    const reply = (ok: boolean, answer: Record<string, unknown>): void =>
      this.send(thing, `${topic}/${ok ? 'accepted' : 'rejected'}`, {
        ...answer,
        timestamp: this.clock,
        ...(body.clientToken ? { clientToken: body.clientToken } : {}),
      });
    if (m[2] === 'start-next') {
      this.startNextCalls.push({ thing, body });
      const e = this.change(thing, () => {
        const n = this.next(thing);
        if (n?.status === 'QUEUED') {
          n.status = 'IN_PROGRESS';
          n.startedAt = this.tick();
          n.lastUpdatedAt = this.clock;
          n.versionNumber++;
          if (body.statusDetails) n.statusDetails = body.statusDetails as Record<string, string>;
          if (typeof body.stepTimeoutInMinutes === 'number')
            n.stepTimeoutInMinutes = body.stepTimeoutInMinutes;
        }
        return n;
      });
      return reply(true, e ? { execution: this.view(e, true) } : {});
    }
    const [, , , jobId, api] = m;
    if (api === 'get') {
      const e = jobId === '$next' ? this.next(thing) : this.list(thing).find((x) => x.jobId === jobId);
      if (!e && jobId !== '$next')
        return reply(false, { code: 'ResourceNotFound', message: `no execution of ${jobId}` });
      return reply(true, e ? { execution: this.view(e, body.includeJobDocument !== false) } : {});
    }
    const e = this.list(thing).find((x) => x.jobId === jobId);
    const reject = (code: string, message: string): void => {
      this.updates.push({ thing, jobId, body, answer: code });
      reply(false, {
        code,
        message,
        ...(e ? { executionState: { status: e.status, versionNumber: e.versionNumber } } : {}),
      });
    };
    if (!e) return reject('ResourceNotFound', `no execution of ${jobId}`);
    this.beforeUpdate?.(e, body);
    if (TERMINAL.has(e.status)) return reject('TerminalStateReached', `execution is ${e.status}`);
    if (!DEVICE_STATUSES.has(String(body.status)))
      return reject('InvalidRequest', `status ${String(body.status)}`);
    if (typeof body.expectedVersion === 'number' && body.expectedVersion !== e.versionNumber)
      return reject('VersionMismatch', `expected ${body.expectedVersion}, current ${e.versionNumber}`);
    this.change(thing, () => {
      e.status = String(body.status);
      if (body.statusDetails) e.statusDetails = body.statusDetails as Record<string, string>;
      if (typeof body.stepTimeoutInMinutes === 'number') e.stepTimeoutInMinutes = body.stepTimeoutInMinutes;
      if (TERMINAL.has(e.status)) delete e.stepTimeoutInMinutes;
      e.versionNumber++;
      e.lastUpdatedAt = this.tick();
      this.updates.push({ thing, jobId, body, answer: 'accepted' });
      reply(true, {
        ...(body.includeJobExecutionState
          ? {
              executionState: {
                status: e.status,
                ...(e.statusDetails ? { statusDetails: e.statusDetails } : {}),
                versionNumber: e.versionNumber,
              },
            }
          : {}),
      });
    });
    this.afterUpdate?.(e, body);
  }
}

/** A loopback http server for firmware images (the lab's presigned URLs are plain http). */
export class ImageServer {
  private constructor(
    private readonly server: HttpServer,
    readonly port: number,
    private readonly files: Map<string, Buffer>,
    /** Paths requested, in order. */
    readonly requests: string[],
  ) {}

  /** Starts on a random loopback port. */
  static async start(): Promise<ImageServer> {
    const files = new Map<string, Buffer>();
    const requests: string[] = [];
    const server = createHttpServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      requests.push(path);
      const body = files.get(path);
      if (!body) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
      res.end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new ImageServer(server, (server.address() as AddressInfo).port, files, requests);
  }

  /** Serves `bytes` at `path`; returns a presigned-looking URL. */
  put(path: string, bytes: Buffer): string {
    this.files.set(path, bytes);
    return `http://127.0.0.1:${this.port}${path}?X-Amz-Signature=test`;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
