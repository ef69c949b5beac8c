import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TimestreamRecord } from '../../../lab/rules/engine';
import { TimeSeriesStore } from '../../../lab/runtime/time-series';

const record = (name: string, value: string): TimestreamRecord => ({
  Dimensions: [{ Name: 'thing', Value: 'fleet-001', DimensionValueType: 'VARCHAR' }],
  MeasureName: name,
  MeasureValue: value,
  MeasureValueType: 'BIGINT',
  Time: '1700000000000',
  TimeUnit: 'MILLISECONDS',
});

describe('local time-series stores', () => {
  let dir: string;
  let store: TimeSeriesStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lab-ts-'));
    store = new TimeSeriesStore(dir);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('Timestream: a declared table keeps its records as JSON lines', async () => {
    store.addDatabase('fleet');
    store.addTable('fleet', 'health');
    await store.writeTimestream('fleet', 'health', [record('rssiDbm', '-61'), record('uptimeS', '60')]);
    expect(store.timestreamRecords('fleet', 'health').map((r) => r.MeasureName)).toEqual([
      'rssiDbm',
      'uptimeS',
    ]);
    expect(readFileSync(store.timestreamFile('fleet', 'health'), 'utf8').split('\n')).toHaveLength(3);
    expect(store.stats().timestream).toEqual([
      { database: 'fleet', table: 'health', declared: true, records: 2, writes: 1 },
    ]);
  });

  test('Timestream: a table outside the stack is taken to exist; a missing table of a declared database is not', async () => {
    await store.writeTimestream('external', 'health', [record('a', '1')]);
    expect(store.stats().timestream).toEqual([
      { database: 'external', table: 'health', declared: false, records: 1, writes: 1 },
    ]);
    store.addDatabase('fleet');
    await expect(store.writeTimestream('fleet', 'nope', [record('a', '1')])).rejects.toThrow(
      /ResourceNotFoundException: The table nope does not exist in database fleet/,
    );
  });

  test('InfluxDB: lines through an enabled destination of the stack only', async () => {
    const arn = 'arn:aws:iot:us-east-1:123456789012:ruledestination/influxdb/d1';
    store.addInfluxDestination({ arn, endpoint: 'https://influx:8086', version: 'V3', enabled: true });
    store.addInfluxDestination({ arn: `${arn}-off`, endpoint: 'x', version: 'V2', enabled: false });
    await store.writeInflux(arn, { database: 'fleet', table: 'health' }, ['health,thing=a v=1i 1']);
    expect(store.influxLines('fleet', 'health')).toEqual(['health,thing=a v=1i 1']);
    await expect(
      store.writeInflux(`${arn}-off`, { database: 'f', table: 't' }, ['x v=1i 1']),
    ).rejects.toThrow(/is not ENABLED/);
    await expect(store.writeInflux('arn:nope', { database: 'f', table: 't' }, ['x v=1i 1'])).rejects.toThrow(
      /does not exist/,
    );
    expect(store.stats().influxdb).toEqual([
      { destination: arn, database: 'fleet', table: 'health', points: 1 },
    ]);
  });

  test('a new store starts empty', async () => {
    store.addDatabase('fleet');
    store.addTable('fleet', 'health');
    await store.writeTimestream('fleet', 'health', [record('a', '1')]);
    const again = new TimeSeriesStore(dir);
    expect(again.timestreamRecords('fleet', 'health')).toEqual([]);
  });
});
