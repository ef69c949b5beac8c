import importPlugin from 'eslint-plugin-import';
import tseslint from 'typescript-eslint';

/**
 * The layers (docs/decisions.md, "Layout"). Each zone names the files it applies to (`target`)
 * and the folders they may not import (`from`).
 */
const ALL = ['core', 'lambda', 'lib', 'cli', 'device', 'lab', 'bench', 'bin', 'test'];
const except = (...allowed) => ALL.filter((d) => !allowed.includes(d)).map((d) => `./${d}`);
const EMULATORS = ['./lab/iot', './lab/rules', './lab/runtime'];
/** Decision cores and parsers: lib reads core's contracts (names, shapes, defaults) only. */
const CORE_LOGIC = [
  './core/provisioning-decision.ts',
  './core/presence-plan.ts',
  './core/manifest.ts',
  './core/attestation.ts',
  './core/trail.ts',
  './core/health.ts',
];

export const LAYER_ZONES = [
  {
    target: './core',
    from: except('core'),
    message: 'core is the pure domain: it imports no other project folder.',
  },
  { target: './lambda', from: except('core', 'lambda'), message: 'Lambda code imports core only.' },
  { target: './lib', from: except('core', 'lib'), message: 'constructs import core contracts only.' },
  {
    target: './lib',
    from: CORE_LOGIC,
    message: 'constructs import core contracts only, not decision cores.',
  },
  { target: './device', from: except('core', 'device'), message: 'the device simulator imports core only.' },
  {
    target: './cli',
    from: except('core', 'lambda', 'device', 'cli'),
    message: 'the CLI builds on core, lambda adapters and device.',
  },
  {
    target: ['./lab/scenario', './lab/main.ts'],
    from: ['./lib', './bench', './test', './bin'],
    message:
      'the lab scenario drives the product through cli/, device/ and the bundled functions, not through lib/ or tests.',
  },
  {
    target: './bin',
    from: except('core', 'lib', 'cli', 'bin'),
    message: 'bin/ holds thin entry points over lib/ and cli/.',
  },
  {
    target: EMULATORS,
    from: [...except('lab'), './lab/scenario', './lab/main.ts'],
    message: 'the lab emulators (lab/iot, lab/rules, lab/runtime) emulate AWS and import no product code.',
  },
];

/** Packages core may not import: it has no AWS SDK and no infrastructure code. */
export const CORE_FORBIDDEN_PACKAGES = [
  '@aws-sdk/*',
  '@smithy/*',
  '@aws-lambda-powertools/*',
  'aws-cdk-lib',
  'aws-cdk-lib/*',
  'constructs',
  'aws-lambda',
];

export default tseslint.config(
  {
    ignores: ['node_modules/**', 'cdk.out/**', '.lab/**', 'coverage/**', '**/.tmp/**', '**/*.js', '**/*.mjs'],
  },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-console': ['error', { allow: ['warn', 'error'] }],
    },
  },
  {
    files: ['cli/**', 'bin/**', 'lab/**', 'device/**', 'bench/**', 'test/**'],
    rules: { 'no-console': 'off' },
  },
  {
    plugins: { import: importPlugin },
    settings: { 'import/resolver': { node: { extensions: ['.ts', '.js', '.json'] } } },
    rules: { 'import/no-restricted-paths': ['error', { zones: LAYER_ZONES }] },
  },
  {
    files: ['core/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: CORE_FORBIDDEN_PACKAGES,
              message:
                'core is pure: no AWS SDK, Powertools or CDK; put I/O in an adapter under lambda/ or cli/.',
            },
          ],
        },
      ],
    },
  },
);
