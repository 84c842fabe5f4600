// typescript-eslint with type information: the promise rules matter most in a queue worker, where a
// floating promise is a lost error and a misused one a handler that never awaited its work.
import eslint from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/node_modules/', '**/dist/', 'coverage/', 'data/', '.gl/', '.whl/', '.gpu-check/'] },
  eslint.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { project: './tsconfig.jest.json', tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // Shapes are number arrays; `[${shape}]` is how every error message here writes them.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowArray: true }],
      // Off: its generic-call check asks `tf.tidy<tf.Tensor2D>(fn)` for `tf.tidy(fn) as tf.Tensor2D`,
      // which does not compile where fn returns the wider tf.Tensor (most tfjs ops do).
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
      // Recursive array types (`interface Nested extends Array<number | Nested>`) need an interface.
      '@typescript-eslint/no-empty-object-type': ['error', { allowInterfaces: 'with-single-extends' }],
    },
  },
  {
    // The dashboard runs in the browser: its own project (DOM types) and globals.
    files: ['apps/api/ui/**/*.ts'],
    languageOptions: {
      globals: { ...globals.browser },
      parserOptions: { project: './apps/api/ui/tsconfig.json', tsconfigRootDir: import.meta.dirname },
    },
  },
  {
    // webgpu under Node cannot read a tensor synchronously (tfjs-backend-webgpu needs OffscreenCanvas),
    // and on any GPU a synchronous read stalls the queue: library and worker code reads with data().
    files: ['libs/*/src/**/*.ts', 'apps/*/src/**/*.ts'],
    rules: {
      'no-restricted-properties': [
        'error',
        ...['dataSync', 'arraySync', 'bufferSync'].map((property) => ({
          property,
          message: 'no synchronous tensor reads in library or worker code: await t.data(), t.array() or t.buffer()',
        })),
      ],
    },
  },
  {
    // Tests read HTTP bodies and Redis records as parsed JSON and assert on them; typing every body
    // would add casts, not safety. The promise rules still apply there.
    files: ['**/test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { ...globals.node }, sourceType: 'commonjs' },
  },
  { files: ['**/*.mjs'], languageOptions: { sourceType: 'module' } },
);
