import { assignRings, parseRingShares, ringForSerial, ringHash } from '../../core/rings';

describe('ring assignment', () => {
  test('hash is deterministic and in [0,1)', () => {
    expect(ringHash('SN-0001')).toBe(ringHash('SN-0001'));
    for (let i = 0; i < 500; i++) {
      const h = ringHash(`SN-${i}`);
      expect(h).toBeGreaterThanOrEqual(0);
      expect(h).toBeLessThan(1);
    }
  });

  test.each([
    ['2:18', { canaryPercent: 2, earlyPercent: 18 }],
    ['0:0', { canaryPercent: 0, earlyPercent: 0 }],
    ['5.5:10', { canaryPercent: 5.5, earlyPercent: 10 }],
  ])('parses shares %s', (text, expected) => {
    expect(parseRingShares(text)).toEqual(expected);
  });

  test.each(['2', 'a:b', '60:50', ''])('rejects malformed shares %p with the fix', (text) => {
    expect(() => parseRingShares(text)).toThrow(/use|lower/);
  });

  test('every stratum of lot x hwRev gets a canary, in proportion', () => {
    const units = [];
    for (const lot of ['L1', 'L2']) {
      for (const hwRev of ['A', 'B']) {
        for (let i = 0; i < 100; i++)
          units.push({ serial: `${lot}${hwRev}${String(i).padStart(4, '0')}`, lot, hwRev });
      }
    }
    units.push({ serial: 'LONE0001', lot: 'L3', hwRev: 'C' });
    const rings = assignRings(units, { canaryPercent: 2, earlyPercent: 18 });
    for (const lot of ['L1', 'L2']) {
      for (const hwRev of ['A', 'B']) {
        const stratum = units
          .filter((u) => u.lot === lot && u.hwRev === hwRev)
          .map((u) => rings.get(u.serial));
        expect(stratum.filter((r) => r === 'canary')).toHaveLength(2);
        expect(stratum.filter((r) => r === 'early')).toHaveLength(18);
        expect(stratum.filter((r) => r === 'broad')).toHaveLength(80);
      }
    }
    expect(rings.get('LONE0001')).toBe('canary');
    // Deterministic: input order does not matter.
    const again = assignRings([...units].reverse(), { canaryPercent: 2, earlyPercent: 18 });
    expect([...again.entries()].sort()).toEqual([...rings.entries()].sort());
  });

  test('hash-only ring follows the shares', () => {
    const shares = { canaryPercent: 10, earlyPercent: 30 };
    const counts = { canary: 0, early: 0, broad: 0 };
    for (let i = 0; i < 5000; i++) counts[ringForSerial(`SN${i}`, shares)]++;
    expect(counts.canary / 5000).toBeGreaterThan(0.07);
    expect(counts.canary / 5000).toBeLessThan(0.13);
    expect(counts.broad / 5000).toBeGreaterThan(0.55);
    expect(ringForSerial('X', { canaryPercent: 0, earlyPercent: 0 })).toBe('broad');
  });
});
