/**
 * In-memory SQS queues. The lab uses them as dead-letter stores: rule error actions and
 * event-source-mapping on-failure destinations deliver here, and the lab reports on them.
 */
import { createHash, randomUUID } from 'node:crypto';

export interface QueueMessage {
  messageId: string;
  queueName: string;
  body: string;
  /** The body parsed as JSON, when it is JSON. */
  json?: unknown;
  sentAt: number;
  /** Who delivered it (e.g. `rule:<name>`). */
  source?: string;
}

export interface QueueInfo {
  logicalId: string;
  name: string;
  url: string;
  arn: string;
}

export class QueueStore {
  private readonly queues = new Map<string, { info: QueueInfo; messages: QueueMessage[] }>();
  private readonly listeners = new Map<string, ((m: QueueMessage) => void)[]>();

  add(info: QueueInfo): void {
    this.queues.set(info.name, { info, messages: [] });
  }

  /** A queue by name, URL or ARN. */
  find(ref: string): QueueInfo | undefined {
    const name = ref.includes('/')
      ? ref.slice(ref.lastIndexOf('/') + 1)
      : ref.includes(':')
        ? ref.slice(ref.lastIndexOf(':') + 1)
        : ref;
    return this.queues.get(name)?.info;
  }

  send(ref: string, body: string, source?: string): QueueMessage {
    const info = this.find(ref);
    if (!info)
      throw new Error(`AWS.SimpleQueueService.NonExistentQueue: The specified queue does not exist: ${ref}`);
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      json = undefined;
    }
    const msg: QueueMessage = {
      messageId: randomUUID(),
      queueName: info.name,
      body,
      json,
      sentAt: Date.now(),
      source,
    };
    this.queues.get(info.name)?.messages.push(msg);
    for (const l of this.listeners.get(info.name) ?? []) l(msg);
    return msg;
  }

  /** Subscribe to messages sent to a queue (used by SQS event-source mappings). */
  onMessage(ref: string, listener: (m: QueueMessage) => void): void {
    const info = this.find(ref);
    if (!info) throw new Error(`unknown queue ${ref}`);
    this.listeners.set(info.name, [...(this.listeners.get(info.name) ?? []), listener]);
  }

  /** Remove a message (after an event-source mapping processed it). */
  delete(queueName: string, messageId: string): void {
    const q = this.queues.get(queueName);
    if (q) q.messages = q.messages.filter((m) => m.messageId !== messageId);
  }

  messages(ref?: string): QueueMessage[] {
    if (ref) {
      const info = this.find(ref);
      return info ? [...(this.queues.get(info.name)?.messages ?? [])] : [];
    }
    return [...this.queues.values()].flatMap((q) => q.messages);
  }

  list(): (QueueInfo & { depth: number })[] {
    return [...this.queues.values()].map((q) => ({ ...q.info, depth: q.messages.length }));
  }
}

export function md5(text: string): string {
  return createHash('md5').update(text).digest('hex');
}
