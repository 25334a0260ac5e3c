// Lint rules that catch the bugs a job runner cannot afford: a forgotten `await` loses work
// (no-floating-promises), and type-only imports stay type-only.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'dist/',
      'node_modules/',
      'test/fixtures/',
      'examples/',
      // Plain JavaScript run inside tydra's container image by scripts/compose-smoke.sh, like examples/.
      'scripts/compose-smoke/',
      // Plain JavaScript run by `npm run build` after tsc (it bundles tsc's output).
      'scripts/bundle-runtime.mjs',
      '.tydra/',
      'eslint.config.js',
      '.dependency-cruiser.cjs',
    ],
  },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      curly: 'error',
      eqeqeq: ['error', 'always'],
      'no-console': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Small functions in the shipped code (issue "one room per concern"): blank lines and comments not counted.
    files: ['lib/**', 'queues/**', 'sandbox/**', 'bin/**'],
    rules: { 'max-lines-per-function': ['error', { max: 60, skipBlankLines: true, skipComments: true }] },
  },
  {
    // Tests, the CLI and the benchmark talk to people; the library never logs to the console.
    files: ['test/**', 'bin/**', 'bench/**'],
    rules: { 'no-console': 'off' },
  },
  {
    // Tests read the CLI's JSON output untyped; asserting on it is the point.
    files: ['test/**'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
    },
  },
);
