/**
 * The scenario's expectations, from the units' results, the audit trail (read back through
 * `fleet enrollment list`) and what the lab observed. Pure.
 */
import type { EnrollmentListResult } from '../../cli/commands/enrollment';
import type { DeviceRunResult } from '../../device';
import { BAD_CASE_REASON, RECOVERY_CASE_REASON, type BadCase, type PlannedDevice } from './plan';

export interface Expectation {
  name: string;
  ok: boolean;
  detail: string;
}

export type UnitOutcome = { planned: PlannedDevice; result: DeviceRunResult };

export function isBadCase(kind: PlannedDevice['kind']): kind is BadCase {
  return kind in BAD_CASE_REASON;
}

/** What happened per provisioning template (units of its claims). */
export interface TemplateSection {
  template: string;
  lots: string[];
  attempted: number;
  good: number;
  enrolled: number;
  activated: number;
  /** Denials per reason from the audit trail, for the serials that enrolled through this template. */
  deniedByReason: Record<string, number>;
}

export function templateSections(
  templates: readonly { template: string; lots: string[] }[],
  units: readonly UnitOutcome[],
  trail: EnrollmentListResult,
  active: ReadonlySet<string>,
): TemplateSection[] {
  const templateOfSerial = new Map(units.map((u) => [u.planned.spec.identity.serial, u.planned.template]));
  return templates.map(({ template, lots }) => {
    const mine = units.filter((u) => u.planned.template === template);
    const deniedByReason: Record<string, number> = {};
    for (const a of trail.attempts) {
      if (a.decision !== 'DENIED' || !a.reason || templateOfSerial.get(a.serial) !== template) continue;
      deniedByReason[a.reason] = (deniedByReason[a.reason] ?? 0) + 1;
    }
    return {
      template,
      lots,
      attempted: mine.length,
      good: mine.filter((u) => u.planned.kind === 'good').length,
      enrolled: mine.filter((u) => u.result.outcome === 'enrolled').length,
      activated: mine.filter(
        (u) => active.has(u.planned.spec.identity.serial) && u.result.outcome === 'enrolled',
      ).length,
      deniedByReason,
    };
  });
}

/** Every template enrolls and activates good units of its own. */
export function templateExpectations(
  sections: readonly TemplateSection[],
  units: readonly UnitOutcome[],
  active: ReadonlySet<string>,
): Expectation[] {
  return sections.map((t) => {
    const good = units.filter((u) => u.planned.template === t.template && u.planned.kind === 'good');
    const activeGood = good.filter(
      (u) => u.result.outcome === 'enrolled' && active.has(u.planned.spec.identity.serial),
    );
    return {
      name: `template ${t.template} enrolls and activates its good units`,
      ok: good.length > 0 && activeGood.length === good.length,
      detail:
        good.length === 0 ? 'no good unit enrolled through it' : `${activeGood.length}/${good.length} ACTIVE`,
    };
  });
}

export interface ExpectationInputs {
  units: readonly UnitOutcome[];
  trail: EnrollmentListResult;
  active: ReadonlySet<string>;
  /** Denials per reason in the trail. */
  deniedByReason: Record<string, number>;
  deadLetters: number;
  allowedGiveUps: number;
}

/** The reasons the trail recorded per serial for one decision. */
function reasonsBySerial(trail: EnrollmentListResult, decision: 'ALLOWED' | 'DENIED'): Map<string, string[]> {
  const bySerial = new Map<string, string[]>();
  for (const a of trail.attempts) {
    if (a.decision !== decision || !a.reason) continue;
    bySerial.set(a.serial, [...(bySerial.get(a.serial) ?? []), a.reason]);
  }
  return bySerial;
}

/** One line per unit (what it saw, the trail's denials), at most ten units listed. */
function unitLister(denialsBySerial: ReadonlyMap<string, string[]>): {
  describe(p: UnitOutcome): string;
  list(items: UnitOutcome[]): string;
} {
  const describe = (p: UnitOutcome): string => {
    const r = p.result;
    const seen =
      r.outcome === 'denied'
        ? `denied ${r.errorCode}: ${r.errorMessage}`
        : r.outcome === 'gaveUp'
          ? `gave up (${r.phase}: ${r.lastError})`
          : 'enrolled';
    const trailReasons = denialsBySerial.get(p.planned.spec.identity.serial);
    return `${p.planned.spec.identity.serial} [${p.planned.kind}] ${seen}${trailReasons ? `; trail: ${trailReasons.join(', ')}` : ''}`;
  };
  const list = (items: UnitOutcome[]): string =>
    items.slice(0, 10).map(describe).join('; ') + (items.length > 10 ? `; … ${items.length - 10} more` : '');
  return { describe, list };
}

/** Good units enroll (or give up within the allowance) and the lifecycle rule activates them. */
function goodUnitExpectations(
  good: UnitOutcome[],
  gaveUp: UnitOutcome[],
  active: ReadonlySet<string>,
  list: (items: UnitOutcome[]) => string,
): Expectation[] {
  const notEnrolled = good.filter((p) => p.result.outcome !== 'enrolled' && p.result.outcome !== 'gaveUp');
  const notActive = good.filter(
    (p) => p.result.outcome === 'enrolled' && !active.has(p.planned.spec.identity.serial),
  );
  return [
    {
      name: 'every allowlisted good unit enrolls',
      ok:
        notEnrolled.length === 0 &&
        good.every((p) => p.result.outcome === 'enrolled' || p.result.outcome === 'gaveUp'),
      detail:
        notEnrolled.length === 0
          ? `${good.length - gaveUp.filter((g) => g.planned.kind === 'good').length}/${good.length}`
          : list(notEnrolled),
    },
    {
      name: 'every enrolled unit is activated by the lifecycle rule',
      ok: notActive.length === 0,
      detail: notActive.length === 0 ? `${active.size} ACTIVE` : `not ACTIVE: ${list(notActive)}`,
    },
  ];
}

/** Each bad case is denied, with its reason in the trail. */
function badCaseExpectation(
  p: UnitOutcome,
  denialsBySerial: ReadonlyMap<string, string[]>,
  describe: (p: UnitOutcome) => string,
): Expectation {
  const serial = p.planned.spec.identity.serial;
  const reasons = denialsBySerial.get(serial) ?? [];
  const ok = p.result.outcome === 'denied' && reasons.includes(p.planned.expectedReason as string);
  return {
    name: `${p.planned.kind} ${serial} is denied with ${p.planned.expectedReason}`,
    ok,
    detail: ok ? 'denied, reason recorded in the trail' : describe(p),
  };
}

/** A recovery unit retries, is allowed with its reason, and ends ACTIVE. */
function recoveryExpectation(
  p: UnitOutcome,
  allowsBySerial: ReadonlyMap<string, string[]>,
  active: ReadonlySet<string>,
  describe: (p: UnitOutcome) => string,
): Expectation {
  const serial = p.planned.spec.identity.serial;
  const allows = allowsBySerial.get(serial) ?? [];
  const ok =
    p.result.outcome === 'enrolled' &&
    p.result.retries > 0 &&
    active.has(serial) &&
    allows.includes(p.planned.expectedReason as string);
  return {
    name: `${p.planned.kind} ${serial} retries and is allowed as ${p.planned.expectedReason}, then ACTIVE`,
    ok,
    detail: ok
      ? `allowed ${[...allows].reverse().join(' then ')}; ${p.result.retries} retr${p.result.retries === 1 ? 'y' : 'ies'}`
      : `${describe(p)}; allowed: ${allows.join(', ') || 'never'}; ${active.has(serial) ? 'ACTIVE' : 'not ACTIVE'}`,
  };
}

/** No decision other than the planned ones: good units are never denied on the way. */
function trailDenialsExpectation(bad: UnitOutcome[], actual: Record<string, number>): Expectation {
  const expectedCounts: Record<string, number> = {};
  for (const p of bad)
    expectedCounts[p.planned.expectedReason as string] =
      (expectedCounts[p.planned.expectedReason as string] ?? 0) + 1;
  const keys = [...new Set([...Object.keys(expectedCounts), ...Object.keys(actual)])].sort();
  const mismatched = keys.filter((k) => (expectedCounts[k] ?? 0) !== (actual[k] ?? 0));
  return {
    name: 'trail denials match the planned bad cases',
    ok: mismatched.length === 0,
    detail:
      mismatched.length === 0
        ? keys.map((k) => `${k} ${actual[k]}`).join(', ') || 'none'
        : mismatched
            .map((k) => `${k}: expected ${expectedCounts[k] ?? 0}, trail ${actual[k] ?? 0}`)
            .join('; '),
  };
}

export function checkExpectations({
  units: planned,
  trail,
  active,
  deniedByReason,
  deadLetters,
  allowedGiveUps,
}: ExpectationInputs): Expectation[] {
  const denialsBySerial = reasonsBySerial(trail, 'DENIED');
  const allowsBySerial = reasonsBySerial(trail, 'ALLOWED');
  const { describe, list } = unitLister(denialsBySerial);
  const good = planned.filter((p) => p.planned.kind === 'good');
  const bad = planned.filter((p) => isBadCase(p.planned.kind));
  const recovering = planned.filter((p) => p.planned.kind in RECOVERY_CASE_REASON);
  const gaveUp = planned.filter((p) => p.result.outcome === 'gaveUp');
  return [
    ...goodUnitExpectations(good, gaveUp, active, list),
    ...bad.map((p) => badCaseExpectation(p, denialsBySerial, describe)),
    ...recovering.map((p) => recoveryExpectation(p, allowsBySerial, active, describe)),
    trailDenialsExpectation(bad, deniedByReason),
    {
      name: `gave up ≤ ${allowedGiveUps}`,
      ok: gaveUp.length <= allowedGiveUps,
      detail: gaveUp.length === 0 ? '0' : `${gaveUp.length}: ${list(gaveUp)}`,
    },
    {
      name: "no dead letters outside the health consumer's queue",
      ok: deadLetters === 0,
      detail: String(deadLetters),
    },
  ];
}
