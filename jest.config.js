/** Jest runs the TypeScript sources as ES modules (p-retry is ESM-only). */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }],
    // content-disposition 3 is ESM-only and `require`d by @fastify/static (Bull Board, Swagger
    // UI). Node 20.19 loads it natively (require(esm)); Jest's runtime cannot before Node 24.9,
    // so Jest compiles that one package to CommonJS.
    '^.+/node_modules/content-disposition/.+\\.js$': [
      'ts-jest',
      { useESM: false, tsconfig: { allowJs: true, module: 'commonjs' } },
    ],
  },
  transformIgnorePatterns: ['/node_modules/(?!content-disposition/)'],
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  // builds the admin console for the browser tests when missing or stale (jest.global-setup.js)
  globalSetup: '<rootDir>/jest.global-setup.js',
  testTimeout: 60000,
  maxWorkers: 2,
};
