import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    files: ['src/**'],
    ignores: ['src/models/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['mongoose'] }] },
  },
  {
    files: ['src/mapping/**', 'src/reconcile/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: ['axios', 'mongoose', 'bullmq', 'ioredis', 'better-sqlite3', 'node:fs*'] },
      ],
    },
  },
  {
    // Shared by the API and the browser console (built by vite): zod only, nothing of node or
    // of the server (docs/decisions/0023-run-status-and-shared-schemas.md).
    files: ['src/shared/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: ['*', '!zod'] }],
    },
  },
  { files: ['*.js'], ...tseslint.configs.disableTypeChecked },
);
