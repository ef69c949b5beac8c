/**
 * Local stores for the rules' time-series actions, as files under the lab directory:
 *
 * - Timestream: one JSON line per record (WriteRecords shape) in
 *   `<labDir>/timestream/<database>/<table>.jsonl`. Tables the stack declares
 *   (AWS::Timestream::Database / Table) are created at start; a table the stack does not declare
 *   is taken to exist outside the stack (the lab cannot know) and is created on its first write,
 *   listed with `declared: false` in the stats. A declared database without the table still fails
 *   (ResourceNotFoundException), as on AWS.
 * - InfluxDB: line-protocol lines in `<labDir>/influxdb/<database>/<table>.lp`, written through a
 *   topic rule destination the stack declares (AWS::IoT::TopicRuleDestination with
 *   InfluxDBProperties, Status ENABLED); an unknown or disabled destination fails the write.
 *
 * Both directories are wiped when the store is created (a lab run starts empty, like the
 * emulators). Counts are kept in memory for `stats()`.
 */
import { appendFileSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TimestreamRecord } from '../rules/engine';

export interface InfluxDestination {
  arn: string;
  endpoint: string;
  version: string;
  enabled: boolean;
}

export interface TimeSeriesStats {
  /** `declared`: the stack declares the table; false for a table taken to exist outside the stack. */
  timestream: { database: string; table: string; declared: boolean; records: number; writes: number }[];
  influxdb: { destination: string; database: string; table: string; points: number }[];
}

/** File-name-safe segment (database, table and measurement names may hold other characters). */
const segment = (s: string): string => encodeURIComponent(s).replace(/%/g, '_');

export class TimeSeriesStore {
  private readonly tables = new Map<
    string,
    { database: string; table: string; declared: boolean; records: number; writes: number }
  >();
  private readonly databases = new Set<string>();
  private readonly destinations = new Map<string, InfluxDestination>();
  private readonly points = new Map<
    string,
    { destination: string; database: string; table: string; points: number }
  >();

  constructor(readonly dir: string) {
    rmSync(join(dir, 'timestream'), { recursive: true, force: true });
    rmSync(join(dir, 'influxdb'), { recursive: true, force: true });
  }

  addDatabase(name: string): void {
    this.databases.add(name);
  }

  addTable(database: string, table: string): void {
    this.tables.set(`${database}\u0000${table}`, { database, table, declared: true, records: 0, writes: 0 });
  }

  addInfluxDestination(d: InfluxDestination): void {
    this.destinations.set(d.arn, d);
  }

  timestreamFile(database: string, table: string): string {
    return join(this.dir, 'timestream', segment(database), `${segment(table)}.jsonl`);
  }

  influxFile(database: string, table: string): string {
    return join(this.dir, 'influxdb', segment(database), `${segment(table)}.lp`);
  }

  /** WriteRecords: the records of one write, appended together. */
  async writeTimestream(database: string, table: string, records: TimestreamRecord[]): Promise<void> {
    const key = `${database}\u0000${table}`;
    let t = this.tables.get(key);
    if (!t) {
      if (this.databases.has(database))
        throw new Error(
          `ResourceNotFoundException: The table ${table} does not exist in database ${database}`,
        );
      t = { database, table, declared: false, records: 0, writes: 0 };
      this.tables.set(key, t);
    }
    const file = this.timestreamFile(database, table);
    mkdirSync(join(file, '..'), { recursive: true });
    appendFileSync(file, records.map((r) => `${JSON.stringify(r)}\n`).join(''));
    t.records += records.length;
    t.writes++;
  }

  /** An InfluxDB write through a topic rule destination. */
  async writeInflux(
    destinationArn: string,
    target: { database: string; table: string },
    lines: string[],
  ): Promise<void> {
    const d = this.destinations.get(destinationArn);
    if (!d)
      throw new Error(`ResourceNotFoundException: topic rule destination ${destinationArn} does not exist`);
    if (!d.enabled)
      throw new Error(`InvalidRequestException: topic rule destination ${destinationArn} is not ENABLED`);
    const file = this.influxFile(target.database, target.table);
    mkdirSync(join(file, '..'), { recursive: true });
    appendFileSync(file, lines.map((l) => `${l}\n`).join(''));
    const key = `${destinationArn}\u0000${target.database}\u0000${target.table}`;
    const entry = this.points.get(key) ?? {
      destination: destinationArn,
      database: target.database,
      table: target.table,
      points: 0,
    };
    entry.points += lines.length;
    this.points.set(key, entry);
  }

  /** The records written to a Timestream table so far. */
  timestreamRecords(database: string, table: string): TimestreamRecord[] {
    try {
      return readFileSync(this.timestreamFile(database, table), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as TimestreamRecord);
    } catch {
      return [];
    }
  }

  /** The line-protocol lines written for a database and table so far. */
  influxLines(database: string, table: string): string[] {
    try {
      return readFileSync(this.influxFile(database, table), 'utf8').split('\n').filter(Boolean);
    } catch {
      return [];
    }
  }

  stats(): TimeSeriesStats {
    return {
      timestream: [...this.tables.values()].map((t) => ({ ...t })),
      influxdb: [...this.points.values()].map((p) => ({ ...p })),
    };
  }
}
