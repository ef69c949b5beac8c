/** Readable summary of a scenario report (what `npm run lab` prints). */
import type { MqttSection, MqttVersionSection } from './mqtt-versions';
import type { ScenarioReport } from './run';
import type { TelemetrySection } from './telemetry';

const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

export function formatReport(r: ScenarioReport): string[] {
  const e = r.enrollment;
  const denied = Object.values(e.deniedByReason).reduce((a, b) => a + b, 0);
  const lines: string[] = [];
  lines.push('');
  lines.push(
    `Enrollment of ${e.attempted} units (${r.lots.map((l) => `${l.lot}${l.requireAttestation ? ' attested' : ''}${l.hold ? ' on hold' : ''}`).join(', ')})`,
  );
  lines.push(
    `  enrolled   ${e.enrolled}   activated ${e.activated}   denied ${denied}   gave up ${e.gaveUp}   retries ${e.retries}`,
  );
  lines.push(
    `  enroll time p50 ${e.p50Ms} ms, p99 ${e.p99Ms} ms; first-time success ${e.firstTimeSuccessRate === null ? 'n/a' : `${(e.firstTimeSuccessRate * 100).toFixed(1)}%`}`,
  );
  const reasons = Object.entries(e.deniedByReason).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  if (reasons.length > 0) {
    lines.push('  denied by reason (audit trail; devices only see AccessDenied on AWS):');
    const width = Math.max(...reasons.map(([k]) => k.length));
    for (const [reason, n] of reasons) {
      const kinds = Object.entries(r.badCases)
        .filter(([, v]) => v.expectedReason === reason)
        .map(([k, v]) => `${k}: ${v.serials.slice(0, 3).join(', ')}${v.serials.length > 3 ? ', …' : ''}`);
      lines.push(`    ${reason.padEnd(width)}  ${String(n).padStart(3)}  ${kinds.join('; ')}`);
    }
  }
  if (r.templates.length > 0) {
    lines.push('  per provisioning template:');
    for (const t of r.templates) {
      const denied = Object.entries(t.deniedByReason)
        .sort((a, b) => a[0].localeCompare(b[0]))
        .map(([reason, n]) => `${reason} ${n}`);
      lines.push(
        `    ${t.template} (${t.lots.join(', ')}): ${t.attempted} units, ${t.enrolled} enrolled, ${t.activated} activated${denied.length ? `; denied ${denied.join(', ')}` : ''}`,
      );
    }
  }
  for (const [kind, v] of Object.entries(r.recoveryCases)) {
    lines.push(
      `  recovered after a lost RegisterThing answer (${kind}): ${v.serials.join(', ')}, retry allowed as ${v.expectedReason}`,
    );
  }
  if (r.telemetry) lines.push(...telemetryLines(r.telemetry));
  else lines.push('Telemetry: not run (enrollment only)');
  lines.push(...mqttLines(r.mqtt));
  lines.push(
    `Timings: synth ${s(r.timings.synthMs)}, lab start ${s(r.timings.labStartMs)}, factory set-up ${s(r.timings.factorySetupMs)}, ` +
      `enrollment ${s(r.timings.firstWaveMs)}, activation wait ${s(r.timings.activationWaitMs)}, clones ${s(r.timings.cloneWaveMs)}, recovery ${s(r.timings.recoveryWaveMs)}, MQTT probe ${s(r.timings.mqttProbeMs)}, telemetry ${s(r.timings.telemetryMs)}; scenario ${s(r.timings.scenarioMs)}`,
  );
  lines.push('Functions:');
  for (const f of r.lab.functions) {
    lines.push(
      `  ${f.functionName}: ${f.invocations} invocations, ${f.errors} errors, ${f.timeouts} timeouts, ${f.coldStarts} cold starts`,
    );
  }
  lines.push('Rules:');
  for (const rule of r.lab.rules) {
    lines.push(
      `  ${rule.ruleName}: ${rule.matched} matched, ${rule.actionFailures} action failures, ${rule.errorActions} error actions`,
    );
  }
  const byQueue = new Map<string, number>();
  for (const d of r.lab.deadLetters) byQueue.set(d.queueName, (byQueue.get(d.queueName) ?? 0) + 1);
  lines.push(
    `Dead letters: ${r.lab.deadLetters.length}${byQueue.size ? ` (${[...byQueue].map(([q, n]) => `${q} ${n}`).join(', ')})` : ''}`,
  );
  lines.push('');
  lines.push('Expectations:');
  for (const x of r.expectations)
    lines.push(`  ${x.ok ? 'ok  ' : 'FAIL'} ${x.name}${x.ok ? '' : `: ${x.detail}`}`);
  lines.push(r.ok ? 'All expectations met.' : `${r.failures.length} expectation(s) failed.`);
  const note = mqttClosingNote(r.mqtt);
  if (note) lines.push(note);
  return lines;
}

const rate = (n: number): string => n.toFixed(1);
const ms = (n: number): string => (n < 10 ? n.toFixed(1) : n.toFixed(0));

/** The per-version table: units, enrollment, the probe's bursts, streaming. */
export function mqttLines(m: MqttSection): string[] {
  const lines = [
    `MQTT versions in the same run (${Math.round(m.mqtt5Share * 100)}% of the units on MQTT 5, the rest on 3.1.1)`,
  ];
  const header = [
    'version',
    'units',
    'enrolled',
    'active',
    'enroll p50/p99 ms',
    'connects/s',
    'connect p50/p99 ms',
    'messages/s',
    'PUBACK p50/p99 ms',
    'streamed',
    'lost',
  ];
  const row = (v: MqttVersionSection): string[] => [
    v.version,
    String(v.units),
    String(v.enrolled),
    String(v.active),
    `${v.enrollP50Ms}/${v.enrollP99Ms}`,
    v.connect ? rate(v.connect.perSecond) : '-',
    v.connect ? `${ms(v.connect.p50Ms)}/${ms(v.connect.p99Ms)}` : '-',
    v.publish ? rate(v.publish.perSecond) : '-',
    v.publish ? `${ms(v.publish.p50Ms)}/${ms(v.publish.p99Ms)}` : '-',
    v.stream ? String(v.stream.acked) : '-',
    v.stream ? String(v.stream.lost) : '-',
  ];
  const rows = [header, ...m.versions.map(row)];
  const widths = header.map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows)
    lines.push(
      `  ${r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ')}`,
    );
  if (m.probe)
    lines.push(
      `  probe: a warm-up round, then ${m.probe.rounds} counted: each version's ACTIVE units connect ${m.probe.concurrency} at a time, then publish ${m.probe.messagesPerUnit} QoS 1 messages each (one in flight per unit) on dt/<prefix>/<thing>/probe; versions one after the other, taking turns to go first, the lab idle between bursts; devices and lab share one process`,
    );
  else lines.push('  probe: not run');
  return lines;
}

/**
 * The last line of the report: the lab's connect and publish throughput on MQTT 5 against 3.1.1,
 * measured in this run. Undefined unless the probe ran on both versions.
 */
export function mqttClosingNote(m: MqttSection): string | undefined {
  const [v3, v5] = (['3.1.1', '5'] as const).map((v) => m.versions.find((x) => x.version === v));
  if (!v3?.connect || !v3.publish || !v5?.connect || !v5.publish) return undefined;
  const ratio = (a: number, b: number): string => (b > 0 ? `×${(a / b).toFixed(2)}` : '×n/a');
  return (
    `MQTT 5 against 3.1.1 in this run: connects ${rate(v5.connect.perSecond)}/s against ${rate(v3.connect.perSecond)}/s (${ratio(v5.connect.perSecond, v3.connect.perSecond)}), ` +
    `publishes ${rate(v5.publish.perSecond)}/s against ${rate(v3.publish.perSecond)}/s (${ratio(v5.publish.perSecond, v3.publish.perSecond)}); ` +
    `connect p50 ${ms(v5.connect.p50Ms)} against ${ms(v3.connect.p50Ms)} ms, PUBACK p50 ${ms(v5.publish.p50Ms)} against ${ms(v3.publish.p50Ms)} ms`
  );
}

function telemetryLines(t: TelemetrySection): string[] {
  const lines: string[] = [];
  const outage = t.outage ? `; Kinesis stopped ${s(t.outage.atMs)} in, for ${s(t.outage.forMs)}` : '';
  lines.push(
    `Telemetry from ${t.devices} units over Basic Ingest for ${s(t.durationMs)} (a reading every ${t.settings.readingIntervalMs} ms, ${t.settings.readingsPerMessage} per message, health every ${t.settings.healthIntervalMs} ms${outage})`,
  );
  lines.push(
    `  published ${t.published} (${t.readings} readings)   delivered ${t.delivered}   archived ${t.archived}   in error store ${t.inErrorStore}   replayed ${t.replayed} (${t.replay.counts.replayed} entries re-ingested, Last Wills included)   lost ${t.lost}`,
  );
  lines.push(
    `  last wills ${t.lastWills}   duplicates ${t.duplicates}   dropped by devices ${t.droppedByDevices}   reconnects ${t.links.connects}   reboots ${
      Object.entries(t.links.reboots)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ') || '0'
    }`,
  );
  lines.push('  health per firmware × ring (from the stream, core/health.ts):');
  for (const c of t.cohorts)
    lines.push(
      `    ${`${c.firmware} ${c.ring}`.padEnd(24)} ${String(c.activeDevices).padStart(4)} units ${String(c.reports).padStart(5)} reports ${String(c.unexpectedReboots).padStart(4)} unexpected reboots (${c.crashResets} crashes) ${c.lowHeapReports} low heap ${c.weakRssiReports} weak link`,
    );
  lines.push(
    `  the consumer's metrics (EMF): ${Object.entries(t.consumer.metricsByFirmware)
      .map(([fw, m]) => `${fw} ${m.unexpectedReboots} unexpected reboots in ${m.reports} reports`)
      .join('; ')}`,
  );
  lines.push(
    `  registry: ${t.registry.lastSeenSet}/${t.devices} lastSeen, ${t.registry.firmwareRecorded}/${t.registry.switched} firmware switches recorded (${t.registry.firmwareChangedEntries} FIRMWARE_CHANGED); consumer dead letters ${t.consumer.deadLetters} ${JSON.stringify(t.consumer.deadLetterReasons)}`,
  );
  for (const table of t.timeSeries.timestream)
    lines.push(
      `  Timestream ${table.database}.${table.table}: ${table.records} records in ${table.writes} writes`,
    );
  for (const target of t.timeSeries.influxdb)
    lines.push(`  InfluxDB ${target.database}.${target.table}: ${target.points} points`);
  return lines;
}
