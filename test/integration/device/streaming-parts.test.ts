/**
 * The parts of a streaming device, without a broker: schedulers, the batcher and health reports
 * (checked against the contract), profiles, topics, the buffer and the ledger; and a device whose
 * link never comes up, on fake time.
 */
import { healthReportSchema } from '../../../core/telemetry';
import {
  Boot,
  dataTopics,
  DeviceLedger,
  ledgerReport,
  ManualScheduler,
  Outbox,
  parseFirmwareProfiles,
  profileFor,
  PROFILE_CONDITIONS,
  seededRandom,
  streamFleet,
  StreamingDevice,
  TelemetryBatcher,
  TimerScheduler,
  TransportError,
  type DeviceAgent,
  type LedgerKey,
  type StreamEvent,
} from '../../../device';

describe('schedulers', () => {
  afterEach(() => jest.useRealTimers());

  test('TimerScheduler: a thousand tasks hold one timer, run in time order, and cancelling frees it', () => {
    jest.useFakeTimers({ now: Date.UTC(2024, 0, 1) });
    const s = new TimerScheduler();
    const ran: number[] = [];
    const cancels = Array.from({ length: 1000 }, (_, i) => s.after(1000 - i, () => ran.push(1000 - i)));
    expect(jest.getTimerCount()).toBe(1);
    jest.advanceTimersByTime(10);
    expect(ran).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(jest.getTimerCount()).toBe(1);
    for (const c of cancels) c();
    expect(jest.getTimerCount()).toBe(0);
    jest.advanceTimersByTime(5000);
    expect(ran).toHaveLength(10);
  });

  test('ManualScheduler: nothing runs until advanced; ties in scheduling order; tasks scheduled on the way run too', () => {
    const s = new ManualScheduler(Date.UTC(2024, 0, 1));
    const ran: string[] = [];
    s.after(10, () => ran.push('a'));
    s.after(10, () => {
      ran.push('b');
      s.after(5, () => ran.push(`c@${s.now() - Date.UTC(2024, 0, 1)}`));
    });
    const cancel = s.after(12, () => ran.push('never'));
    cancel();
    expect(ran).toEqual([]);
    expect(s.advance(20)).toBe(3);
    expect(ran).toEqual(['a', 'b', 'c@15']);
    expect(s.now()).toBe(Date.UTC(2024, 0, 1) + 20);
    expect(s.nextAt()).toBeUndefined();
  });
});

describe('telemetry and health payloads', () => {
  test('the batcher counts messages from 0 at each boot and validates every message', () => {
    const b = new TelemetryBatcher(2);
    const r = (ts: number) => ({ ts, values: { temperature_c: 20 } });
    const t0 = Date.UTC(2024, 0, 1);
    expect(b.add(r(t0))).toBeUndefined();
    expect(b.add(r(t0 + 1))).toEqual({ seq: 0, readings: [r(t0), r(t0 + 1)] });
    b.add(r(t0 + 2));
    expect(b.add(r(t0 + 3))?.seq).toBe(1);
    b.add(r(t0 + 4));
    expect(b.reboot()).toBe(1);
    b.add(r(t0 + 5));
    expect(b.add(r(t0 + 6))?.seq).toBe(0);
    expect(() => new TelemetryBatcher(101)).toThrow(
      /readingsPerMessage must be a whole number from 1 to 100/,
    );
  });

  test('a reading that breaks the contract fails loudly', () => {
    const b = new TelemetryBatcher(1);
    expect(() => b.add({ ts: Date.UTC(2024, 0, 1), values: { Temperature: 20 } })).toThrow(
      /^simulator bug: telemetry payload breaks the contract: readings\.0\.values\.Temperature/,
    );
    expect(() => b.add({ ts: 5, values: { temperature_c: 20 } })).toThrow(/simulator bug/);
  });

  test('health reports: uptime from the boot, heap minimum since boot, a leaking crash-looper', () => {
    const at = Date.UTC(2024, 0, 1);
    const random = seededRandom('health');
    const boot = new Boot('b1', at, 'WATCHDOG', '1.1.0-rc1', PROFILE_CONDITIONS['crash-looping']);
    const reports = [0, 5_000, 10_000, 15_999].map((dt) => boot.report(at + dt, random));
    for (const r of reports) expect(healthReportSchema.parse(r)).toEqual(r);
    expect(reports.map((r) => r.uptimeS)).toEqual([0, 5, 10, 15]);
    expect(reports.map((r) => r.resetReason)).toEqual(['WATCHDOG', 'WATCHDOG', 'WATCHDOG', 'WATCHDOG']);
    const heap = reports.map((r) => r.heapFreeB);
    expect(heap[3]).toBeLessThan(heap[0] - 20_000);
    expect(reports[3].heapMinB).toBe(Math.min(...heap));
    expect(() => new Boot('b2', at, 'POWER_ON', 'v1', PROFILE_CONDITIONS.healthy).report(at, random)).toThrow(
      /simulator bug: health report breaks the contract: fw/,
    );
  });
});

describe('profiles, topics, randomness', () => {
  test('profiles per firmware; anything else healthy', () => {
    const p = parseFirmwareProfiles(['1.0.0=healthy', '1.1.0-rc1=crash-looping', ' 1.2.0 = flaky ']);
    expect(p).toEqual({ '1.0.0': 'healthy', '1.1.0-rc1': 'crash-looping', '1.2.0': 'flaky' });
    expect(profileFor('1.1.0-rc1', p)).toBe('crash-looping');
    expect(profileFor('9.9.9', p)).toBe('healthy');
    expect(profileFor('9.9.9', p, 'flaky')).toBe('flaky');
  });

  test('Basic Ingest topics by default, direct on request', () => {
    const rules = { telemetry: 'fleet_telemetry', health: 'fleet_health' };
    expect(dataTopics({ topicPrefix: 'fleet', rules }, 'fleet-SN1')).toEqual({
      telemetry: '$aws/rules/fleet_telemetry/dt/fleet/fleet-SN1/telemetry',
      health: '$aws/rules/fleet_health/dt/fleet/fleet-SN1/health',
    });
    expect(dataTopics({ topicPrefix: 'p', delivery: 'direct' }, 't')).toEqual({
      telemetry: 'dt/p/t/telemetry',
      health: 'dt/p/t/health',
    });
    expect(() => dataTopics({ topicPrefix: 'p', rules: { telemetry: 'x', health: '' } }, 't')).toThrow(
      /Basic Ingest needs the health rule name/,
    );
  });

  test('the same seed draws the same numbers', () => {
    const a = seededRandom('s');
    const b = seededRandom('s');
    const c = seededRandom('t');
    const draws = (r: () => number) => Array.from({ length: 5 }, r);
    const first = draws(a);
    expect(draws(b)).toEqual(first);
    expect(draws(c)).not.toEqual(first);
    expect(first.every((x) => x >= 0 && x < 1)).toBe(true);
  });
});

describe('buffer and ledger', () => {
  const key = (ledger: DeviceLedger, ts: number, offline = false): LedgerKey =>
    ledger.created({ kind: 'telemetry', ts, seq: ts, readings: 2, bootId: 'b', topic: 't' }, offline);
  const item = (k: LedgerKey) => ({ key: k, topic: 't', payload: '{}' });

  test('the buffer evicts the oldest first; a failed message goes back in front', () => {
    const ledger = new DeviceLedger('thing');
    const box = new Outbox(2);
    const [a, b, c] = [1, 2, 3].map((ts) => key(ledger, ts));
    expect(box.push(item(a))).toEqual([]);
    box.push(item(b));
    expect(box.push(item(c)).map((i) => i.key.ts)).toEqual([1]);
    const head = box.shift()!;
    expect(head.key.ts).toBe(2);
    // Full again, then the failed head comes back: it is the oldest, so it is the one evicted.
    box.push(item(key(ledger, 4)));
    expect(box.requeue(head).map((i) => i.key.ts)).toEqual([2]);
    expect(() => new Outbox(0)).toThrow(/buffer capacity/);
  });

  test('every message ends acked, dropped or pending; re-sends are counted once per message', () => {
    const ledger = new DeviceLedger('thing');
    const a = key(ledger, 1);
    const b = key(ledger, 2, true);
    const c = key(ledger, 3, true);
    key(ledger, 4);
    ledger.sent(a);
    ledger.failed(a, 'connection lost');
    ledger.sent(a);
    ledger.acked(a);
    ledger.sent(b);
    ledger.acked(b);
    ledger.dropped(c);
    const snapshot = ledgerReport([{ ledger, serial: 'SN1', firmware: '1.0.0', profile: 'flaky' }]);
    expect(snapshot.telemetry).toEqual({
      created: 4,
      published: 3,
      acked: 2,
      failed: 1,
      buffered: 3,
      resent: 2,
      dropped: 1,
      pending: 1,
      readingsAcked: 4,
      readingsDropped: 2,
      readingsLost: 0,
    });
    expect(snapshot.byDevice.thing).toMatchObject({ serial: 'SN1', lastError: 'connection lost' });
    expect([...snapshot.keys({ state: 'acked' })].map((k) => [k.ts, k.attempts])).toEqual([
      [1, 2],
      [2, 1],
    ]);
    expect(() => ledger.acked(a)).toThrow(/already acked/);
    // A snapshot does not move with the device.
    ledger.acked(ledger.keys()[3]);
    expect([...snapshot.keys({ state: 'pending' })]).toHaveLength(1);
    expect(JSON.parse(JSON.stringify(snapshot)).keys).toHaveLength(4);
  });

  test('a PUBLISH refused for good (MQTT 5 PUBACK code) is dropped, never re-sent; a DISCONNECT reason is the last error', () => {
    const ledger = new DeviceLedger('thing');
    const a = key(ledger, 1);
    ledger.sent(a);
    ledger.refused(a, 'publish refused on t: PUBACK 0x87 Not authorized');
    expect(a.state).toBe('dropped');
    let snapshot = ledgerReport([
      { ledger, serial: 'SN1', firmware: '1.0.0', profile: 'healthy', mqttVersion: '5' },
    ]);
    expect(snapshot.telemetry).toMatchObject({ created: 1, published: 1, failed: 1, dropped: 1, pending: 0 });
    expect(snapshot.byDevice.thing).toMatchObject({
      mqttVersion: '5',
      lastError: 'publish refused on t: PUBACK 0x87 Not authorized',
    });
    ledger.ended('lost', 'DISCONNECT 0x8e Session taken over');
    snapshot = ledgerReport([{ ledger, serial: 'SN1', firmware: '1.0.0', profile: 'healthy' }]);
    expect(snapshot.byDevice.thing).toMatchObject({
      mqttVersion: '3.1.1',
      lastError: 'DISCONNECT 0x8e Session taken over',
    });
    expect(snapshot.links.lost).toBe(1);
  });
});

describe('a device whose link never comes up (fake time, no broker)', () => {
  /** An enrolled agent whose every connect is refused. */
  function unreachableAgent(serial = 'SN-OFF'): DeviceAgent & { attempts: number } {
    const agent = {
      serial,
      firmware: '1.0.0',
      topicPrefix: 'fleet',
      identityAfterEnrollment: { thingName: `fleet-${serial}` },
      session: undefined,
      attempts: 0,
      reconnect: async () => {
        agent.attempts++;
        throw new TransportError('CONNECT_FAILED', 'refused', 'ECONNREFUSED 127.0.0.1:8883');
      },
      close: async () => undefined,
      dropConnection: () => undefined,
    };
    return agent as unknown as DeviceAgent & { attempts: number };
  }

  test('readings are buffered, the oldest dropped, and connects back off until stopped', async () => {
    const clock = new ManualScheduler();
    const agent = unreachableAgent();
    const events: StreamEvent[] = [];
    const device = new StreamingDevice({
      agent,
      scheduler: clock,
      delivery: 'direct',
      readingIntervalMs: 1_000,
      readingsPerMessage: 2,
      healthIntervalMs: 60_000,
      bufferMessages: 3,
      random: seededRandom('offline'),
      reconnectBackoff: { baseMs: 1_000, capMs: 4_000 },
    });
    device.on('event', (e: StreamEvent) => events.push(e));
    device.start();
    for (let t = 0; t < 20_000; t += 500) {
      clock.advance(500);
      await device.whenSettled();
    }
    const failures = events.filter(
      (e): e is Extract<StreamEvent, { type: 'connectFailed' }> => e.type === 'connectFailed',
    );
    expect(failures.length).toBe(agent.attempts);
    expect(failures.length).toBeGreaterThan(3);
    expect(failures.every((f) => f.error === 'ECONNREFUSED 127.0.0.1:8883' && f.retryInMs <= 4_000)).toBe(
      true,
    );
    const l = device.ledger;
    // 20 readings → 10 messages, all made offline; the buffer keeps the newest 3.
    expect(l.telemetry).toMatchObject({ created: 10, buffered: 10, dropped: 7, pending: 3, published: 0 });
    expect(l.links).toMatchObject({ connects: 0, connectFailures: failures.length });
    expect(device.buffered).toBe(3);
    await device.stop();
    expect(events.at(-1)).toEqual({ type: 'stopped', thing: 'fleet-SN-OFF' });
    const attempts = agent.attempts;
    clock.advance(60_000);
    await device.whenSettled();
    expect(agent.attempts).toBe(attempts);
  });

  test('a sensor that breaks the contract stops the clock with the error', () => {
    const clock = new ManualScheduler();
    const device = new StreamingDevice({
      agent: unreachableAgent(),
      scheduler: clock,
      delivery: 'direct',
      readingIntervalMs: 1_000,
      readingsPerMessage: 1,
      sensor: () => ({ 'temperature C': 20 }),
    });
    device.start();
    expect(() => clock.advance(1_000)).toThrow(/simulator bug: telemetry payload breaks the contract/);
  });

  test('two thousand streaming devices hold one timer between them', async () => {
    jest.useFakeTimers({ now: Date.UTC(2024, 0, 1) });
    try {
      const fleet = streamFleet({
        agents: Array.from({ length: 2000 }, (_, i) =>
          unreachableAgent(`SCALE${String(i).padStart(5, '0')}`),
        ),
        delivery: 'direct',
        readingIntervalMs: 1_000,
        readingsPerMessage: 5,
        seed: 'scale',
      });
      expect(fleet.devices.size).toBe(2000);
      await fleet.whenSettled();
      jest.advanceTimersByTime(10_000);
      await fleet.whenSettled();
      expect(jest.getTimerCount()).toBe(1);
      const report = fleet.ledger();
      // 9 or 10 readings each (first readings are spread over one interval): a message or two.
      expect(report.devices).toBe(2000);
      expect(Object.values(report.byDevice).every((d) => d.telemetry.created >= 1)).toBe(true);
      expect(Object.values(report.byDevice).every((d) => d.links.connectFailures >= 1)).toBe(true);
      await fleet.stop();
      expect(jest.getTimerCount()).toBe(0);
    } finally {
      jest.useRealTimers();
    }
  });
});

describe('a device whose sessions the broker ends as soon as they begin (fake time, no broker)', () => {
  test('each such loss in a row widens the reconnect backoff; it does not reconnect in a tight loop', async () => {
    const clock = new ManualScheduler();
    let connects = 0;
    /** A session that closes right away, as after a policy refusal of the first publish. */
    const shortSession = (): unknown => {
      let close!: () => void;
      const whenClosed = new Promise<void>((r) => (close = r));
      const session = {
        connected: true,
        whenClosed,
        publish: async () => {
          session.connected = false;
          close();
          throw new TransportError('CONNECTION_LOST', 'closed', 'connection closed by the broker');
        },
        end: async () => close(),
        kill: () => close(),
      };
      return session;
    };
    const agent = {
      serial: 'SN-REF',
      firmware: '1.0.0',
      topicPrefix: 'fleet',
      identityAfterEnrollment: { thingName: 'fleet-SN-REF' },
      session: undefined,
      reconnect: async () => {
        connects++;
        return shortSession();
      },
      close: async () => undefined,
      dropConnection: () => undefined,
    } as unknown as DeviceAgent;
    const device = new StreamingDevice({
      agent,
      scheduler: clock,
      delivery: 'direct',
      readingIntervalMs: 60_000,
      healthIntervalMs: 60_000,
      random: () => 1,
      reconnectBackoff: { baseMs: 1_000, capMs: 30_000 },
    });
    device.start();
    for (let t = 0; t < 60_000; t += 250) {
      clock.advance(250);
      await device.whenSettled();
    }
    await device.stop();
    // Windows 1, 2, 4, 8, 16, 30, 30 s… (random() = 1 takes the whole window): about six connects
    // in a minute, where an immediate reconnect would make hundreds.
    expect(connects).toBeGreaterThan(2);
    expect(connects).toBeLessThan(10);
  });
});
