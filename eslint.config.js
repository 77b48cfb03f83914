// Lint gate: type-aware rules against floating promises and non-exhaustive switches, and the
// import boundaries of docs/design.md ("Shape"): protocol/ imports nothing of ours; device/ and gateway/ never
// import each other.
import tseslint from 'typescript-eslint';
import { sqlOutsideStore, sqlOutsideStoreYet } from './scripts/lint/sql-in-store.js';

const ours = (dirs) =>
  dirs.flatMap((d) => [`**/${d}/**`, `../${d}/*`, `../../${d}/*`, `../../../${d}/*`, `../${d}`]);

// Both programs parse their command lines through runtime/cli.ts (parseCommandLine: sysexits codes, a usage
// error never a throw), not each command with its own node:util parseArgs.
const oneCliParser = ['node:util', 'util'].map((name) => ({
  name,
  importNames: ['parseArgs'],
  message:
    'parse a command line with parseCommandLine from runtime/cli.ts (one parser, sysexits codes for both CLIs).',
}));

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'data/**', '**/*.js', '**/*.cjs', '**/*.mjs'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': [
        'error',
        { considerDefaultExhaustiveForUnions: false, requireDefaultForNonUnion: false },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'off',
      'no-restricted-properties': [
        'error',
        {
          object: 'AbortSignal',
          property: 'any',
          message:
            'AbortSignal.any over a long-lived signal keeps a WeakRef per call (a heap leak in a loop): pass the signals to sleep() (protocol/src/clock.ts) or listen to each.',
        },
      ],
    },
  },
  {
    files: ['protocol/**/*.ts'],
    ignores: ['protocol/**/*.test.ts', 'protocol/scripts/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ours(['device', 'gateway', 'simulator', 'test', 'bench']),
              message: 'protocol/ is pure: it imports nothing of ours.',
            },
            {
              group: [
                'node:*',
                '!node:crypto',
                'fs',
                'net',
                'http',
                'https',
                'mqtt',
                'better-sqlite3',
                'pino',
                'aedes',
              ],
              message:
                'protocol/ does no I/O: keep it to schemas, topics and codecs (node:crypto is allowed).',
            },
          ],
        },
      ],
    },
  },
  {
    // runtime/: process plumbing shared by the reader and the gateway (CLI, systemd notify). It imports only
    // protocol/ and Node (and npm packages), never a program's code.
    files: ['runtime/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ours(['device', 'gateway', 'simulator', 'test', 'bench']),
              message: 'runtime/ is shared by device/ and gateway/: it imports only protocol/ and Node.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['device/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ours(['gateway', 'simulator', 'bench']),
              message: 'device/ must not import gateway/ (or simulator/): share through protocol/.',
            },
          ],
          paths: oneCliParser,
        },
      ],
    },
  },
  {
    files: ['gateway/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ours(['device', 'simulator', 'bench']),
              message: 'gateway/ must not import device/ (or simulator/): share through protocol/.',
            },
          ],
          paths: oneCliParser,
        },
      ],
    },
  },
  {
    // No SQL outside the store adapters (gateway/src/store/README.md, "Layering"); the rules are in
    // scripts/lint/sql-in-store.js. A second no-restricted-syntax block would replace this one: add to it instead.
    files: ['gateway/**/*.ts'],
    ignores: ['gateway/src/store/**', ...sqlOutsideStoreYet],
    rules: { 'no-restricted-syntax': ['error', ...sqlOutsideStore] },
  },
);
