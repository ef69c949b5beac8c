/**
 * The layer rules of eslint.config.mjs really fail an import that crosses a layer: each case
 * lints a one-line fixture placed (virtually) in a project folder.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..');

/**
 * ESLint loads its flat config with a dynamic import, which jest's VM cannot do: the fixtures
 * are linted by one plain Node process with the project's own config.
 */
const LINT_SCRIPT = `
const { ESLint } = require('eslint');
const path = require('node:path');
(async () => {
  const cases = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
  const eslint = new ESLint({ cwd: process.cwd() });
  const out = [];
  for (const [file, code] of cases) {
    const [r] = await eslint.lintText(code + '\\nexport const x = y;\\n', { filePath: path.join(process.cwd(), file) });
    out.push(r.messages.map((m) => m.ruleId || m.message));
  }
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
`;

function lint(cases: Array<[string, string]>): string[][] {
  const stdout = execFileSync(process.execPath, ['-e', LINT_SCRIPT], {
    cwd: ROOT,
    input: JSON.stringify(cases),
    encoding: 'utf8',
  });
  return JSON.parse(stdout) as string[][];
}

const CROSSING: Array<[string, string, string]> = [
  [
    'core/fixture.ts',
    "import { Registry as y } from '../lambda/shared/registry';",
    'import/no-restricted-paths',
  ],
  ['core/fixture.ts', "import { GetCommand as y } from '@aws-sdk/lib-dynamodb';", 'no-restricted-imports'],
  ['core/fixture.ts', "import { Duration as y } from 'aws-cdk-lib';", 'no-restricted-imports'],
  [
    'lambda/shared/fixture.ts',
    "import { RegistryAdmin as y } from '../../cli/registry-admin';",
    'import/no-restricted-paths',
  ],
  [
    'lambda/provisioning/fixture.ts',
    "import { FleetStack as y } from '../../lib/fleet-stack';",
    'import/no-restricted-paths',
  ],
  [
    'lib/fixture.ts',
    "import { Registry as y } from '../lambda/shared/registry';",
    'import/no-restricted-paths',
  ],
  [
    'lib/fixture.ts',
    "import { decide as y } from '../core/provisioning-decision';",
    'import/no-restricted-paths',
  ],
  [
    'device/fixture.ts',
    "import { Registry as y } from '../lambda/shared/registry';",
    'import/no-restricted-paths',
  ],
  ['device/fixture.ts', "import { CliError as y } from '../cli/errors';", 'import/no-restricted-paths'],
  ['cli/fixture.ts', "import { startLabRuntime as y } from '../lab/runtime';", 'import/no-restricted-paths'],
  ['lab/iot/fixture.ts', "import { TABLES as y } from '../../core/model';", 'import/no-restricted-paths'],
  [
    'lab/runtime/fixture.ts',
    "import { CliError as y } from '../../cli/errors';",
    'import/no-restricted-paths',
  ],
  [
    'lab/rules/fixture.ts',
    "import { runScenario as y } from '../scenario/run';",
    'import/no-restricted-paths',
  ],
  [
    'lab/scenario/fixture.ts',
    "import { FleetStack as y } from '../../lib/fleet-stack';",
    'import/no-restricted-paths',
  ],
  [
    'bin/fixture.ts',
    "import { Registry as y } from '../lambda/shared/registry';",
    'import/no-restricted-paths',
  ],
];

const ALLOWED: Array<[string, string]> = [
  ['lambda/provisioning/fixture.ts', "import { TABLES as y } from '../../core/model';"],
  ['lib/fixture.ts', "import { STACK_OUTPUTS as y } from '../core/stack-outputs';"],
  ['device/fixture.ts', "import { topics as y } from '../core/topics';"],
  ['cli/fixture.ts', "import { Registry as y } from '../lambda/shared/registry';"],
  ['lab/runtime/fixture.ts', "import { topicMatches as y } from '../rules/topic-filter';"],
  ['lab/scenario/fixture.ts', "import { CliError as y } from '../../cli/errors';"],
];

const results = new Map<string, string[]>();
beforeAll(() => {
  const cases: Array<[string, string]> = [
    ...CROSSING.map(([f, c]) => [f, c] as [string, string]),
    ...ALLOWED,
  ];
  lint(cases).forEach((ids, i) => results.set(cases[i].join(' '), ids));
}, 60_000);

test.each(CROSSING)('%s: %s is refused', (file, code, rule) => {
  expect(results.get(`${file} ${code}`)).toContain(rule);
});

test.each(ALLOWED)('%s: %s is allowed', (file, code) => {
  expect(results.get(`${file} ${code}`)).toEqual([]);
});
