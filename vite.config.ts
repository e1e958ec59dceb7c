import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Tests spawn redis-server and HTTP servers; child processes isolate that better than threads.
    pool: 'forks',
    // The CI machine has 2 cores.
    maxWorkers: 2,
    reporters: ['default', 'json'],
    outputFile: { json: '.test-results/vitest.json' },
  },
});
