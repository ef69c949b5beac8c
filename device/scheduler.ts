/**
 * One clock and one timer queue for every simulated device of a process. A fleet of thousands of
 * devices holds one timer (the earliest task), not one interval per device and purpose.
 *
 * - {@link TimerScheduler}: wall time (`Date.now`), one `setTimeout` re-armed for the earliest task.
 * - {@link ManualScheduler}: fake time for tests. Nothing runs until `advance(ms)` moves the
 *   clock; tasks run in time order, ties in the order they were scheduled.
 *
 * Tasks are synchronous callbacks; a task that starts I/O owns the promise it creates.
 */

/** Cancels a scheduled task; harmless after it ran or was cancelled. */
export type Cancel = () => void;

export interface Scheduler {
  /** Current time, epoch milliseconds. */
  now(): number;
  /** Run `task` once `delayMs` (≥ 0) from now. */
  after(delayMs: number, task: () => void): Cancel;
}

interface Entry {
  at: number;
  order: number;
  task: () => void;
  cancelled: boolean;
}

/** A binary min-heap of tasks by (time, order of scheduling). */
class TaskQueue {
  private readonly heap: Entry[] = [];
  private order = 0;

  get size(): number {
    return this.heap.length;
  }

  push(at: number, task: () => void): Entry {
    const e: Entry = { at, order: this.order++, task, cancelled: false };
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
    return e;
  }

  /** The earliest live task, without removing it (cancelled tasks on top are discarded). */
  peek(): Entry | undefined {
    while (this.heap.length > 0 && this.heap[0].cancelled) this.pop();
    return this.heap[0];
  }

  pop(): Entry | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l], h[m])) m = l;
        if (r < h.length && before(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

function before(a: Entry, b: Entry): boolean {
  return a.at < b.at || (a.at === b.at && a.order < b.order);
}

function checkDelay(delayMs: number): number {
  if (!Number.isFinite(delayMs)) throw new Error(`scheduler: delay must be a finite number, got ${delayMs}`);
  return Math.max(0, delayMs);
}

/** Wall-clock scheduler: one `setTimeout`, armed for the earliest task. */
export class TimerScheduler implements Scheduler {
  private readonly queue = new TaskQueue();
  private timer?: NodeJS.Timeout;
  private armedFor = Infinity;

  constructor(private readonly clock: () => number = Date.now) {}

  now(): number {
    return this.clock();
  }

  after(delayMs: number, task: () => void): Cancel {
    const e = this.queue.push(this.now() + checkDelay(delayMs), task);
    this.arm();
    return () => {
      if (e.cancelled) return;
      e.cancelled = true;
      // A timer armed for a cancelled task would hold the process until it fires.
      if (e.at === this.armedFor) this.arm();
    };
  }

  /** Tasks waiting (cancelled ones not yet discarded included). */
  get pending(): number {
    return this.queue.size;
  }

  private arm(): void {
    const next = this.queue.peek();
    if (!next) {
      this.disarm();
      return;
    }
    if (this.timer && next.at === this.armedFor) return;
    this.disarm();
    this.armedFor = next.at;
    this.timer = setTimeout(() => this.fire(), Math.max(0, next.at - this.now()));
  }

  private disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Infinity;
  }

  private fire(): void {
    this.timer = undefined;
    this.armedFor = Infinity;
    const now = this.now();
    try {
      for (let e = this.queue.peek(); e && e.at <= now; e = this.queue.peek()) {
        this.queue.pop();
        e.task();
      }
    } finally {
      this.arm();
    }
  }
}

/** Fake time: tasks run only inside {@link ManualScheduler.advance}. */
export class ManualScheduler implements Scheduler {
  private readonly queue = new TaskQueue();
  private time: number;

  /** @param start epoch milliseconds of the fake clock. @default 2024-01-01T00:00:00Z */
  constructor(start = Date.UTC(2024, 0, 1)) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  after(delayMs: number, task: () => void): Cancel {
    const e = this.queue.push(this.time + checkDelay(delayMs), task);
    return () => {
      e.cancelled = true;
    };
  }

  /**
   * Move the clock forward by `ms`, running every task due on the way at its own time (tasks a
   * task schedules inside the window run too). Returns the number of tasks run.
   */
  advance(ms: number): number {
    const end = this.time + checkDelay(ms);
    let ran = 0;
    for (let e = this.queue.peek(); e && e.at <= end; e = this.queue.peek()) {
      this.queue.pop();
      this.time = Math.max(this.time, e.at);
      e.task();
      ran++;
    }
    this.time = end;
    return ran;
  }

  /** Time of the next live task, or undefined when none is waiting. */
  nextAt(): number | undefined {
    return this.queue.peek()?.at;
  }
}
