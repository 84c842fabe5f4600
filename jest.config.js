// One jest run for the whole monorepo. Tests import workspace packages by name; the mapper points
// them at the TypeScript sources so a test never runs against a stale build.
/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>'],
  testMatch: ['**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
  modulePathIgnorePatterns: ['<rootDir>/.*/dist/'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.jest.json' }],
  },
  moduleNameMapper: {
    '^@relu-lstm/(lstm|jobs|client)$': '<rootDir>/libs/$1/src/index.ts',
    // The library's tfjs-free entry (package.json "exports").
    '^@relu-lstm/lstm/config$': '<rootDir>/libs/lstm/src/config.ts',
    // The Nest logger of the api and the worker (libs/jobs package.json "exports").
    '^@relu-lstm/jobs/logging$': '<rootDir>/libs/jobs/src/logging.ts',
  },
  testTimeout: 60000,
  reporters: ['default', '<rootDir>/scripts/jest-totals-reporter.js'],
};
