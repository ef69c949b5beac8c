import {
  DEFAULT_ERROR_PREFIX,
  DEFAULT_PREFIX,
  objectSuffix,
  prefixProblems,
  renderPrefix,
} from '../../../lab/runtime/firehose';

// 2024-03-05T07:08:09.010Z
const at = Date.UTC(2024, 2, 5, 7, 8, 9, 10);
const PREFIX =
  'records/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/';

describe('Firehose object names', () => {
  test("the stack's Prefix, evaluated in UTC at the oldest record's arrival", () => {
    expect(renderPrefix(PREFIX, at)).toBe('records/year=2024/month=03/day=05/hour=07/');
  });

  test('the default prefix is yyyy/MM/dd/HH/', () => {
    expect(renderPrefix(DEFAULT_PREFIX, at)).toBe('2024/03/05/07/');
  });

  test('the ErrorOutputPrefix with the error output type, and random strings', () => {
    expect(
      renderPrefix('errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/', at, {
        errorOutputType: 'processing-failed',
      }),
    ).toBe('errors/processing-failed/2024/03/05/');
    expect(renderPrefix(DEFAULT_ERROR_PREFIX, at, { errorOutputType: 'processing-failed' })).toBe(
      'processing-failed/2024/03/05/07/',
    );
    const random = renderPrefix('x/!{firehose:random-string}/', at);
    expect(random).toMatch(/^x\/[a-zA-Z0-9]{11}\/$/);
    expect(renderPrefix('x/!{firehose:random-string}/', at)).not.toBe(random);
  });

  test('a custom time zone and quoted text in a timestamp pattern', () => {
    expect(
      renderPrefix("dt=!{timestamp:yyyy'-'MM'-'dd}/h=!{timestamp:HH}/", at, { timeZone: 'Asia/Tokyo' }),
    ).toBe('dt=2024-03-05/h=16/');
  });

  test('the suffix: <stream>-<version>-<yyyy>-<MM>-<dd>-<HH>-<mm>-<ss>-<uuid><extension>', () => {
    expect(objectSuffix('fleet-archive', 1, at, { uuid: 'u-1', extension: '.gz' })).toBe(
      'fleet-archive-1-2024-03-05-07-08-09-u-1.gz',
    );
    expect(objectSuffix('fleet-archive', 1, at)).toMatch(
      /^fleet-archive-1-2024-03-05-07-08-09-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
    );
  });

  test.each<[string, 'prefix' | 'error', RegExp | undefined]>([
    [PREFIX, 'prefix', undefined],
    ['errors/!{firehose:error-output-type}/', 'error', undefined],
    ['x/!{firehose:error-output-type}/', 'prefix', /only valid in the ErrorOutputPrefix/],
    ['x/!{firehose:nope}/', 'prefix', /unknown firehose expression/],
    ['x/!{partitionKeyFromQuery:thing}/', 'prefix', /dynamic partitioning\) is not emulated/],
    ['x/!{timestamp:yyyy-ww}/', 'prefix', /letter 'ww' is not supported/],
  ])('problems of %s (%s)', (prefix, kind, problem) => {
    const found = prefixProblems(prefix, kind);
    if (problem) expect(found.join('; ')).toMatch(problem);
    else expect(found).toEqual([]);
  });
});
