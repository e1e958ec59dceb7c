import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig, type ViteUserConfig } from 'vitest/config';

const test: ViteUserConfig = {
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
};

/** The editor: `vite build` (npm run build) and Vite's dev server (npm run dev). */
const app: ViteUserConfig = {
  root: fileURLToPath(new URL('client/app', import.meta.url)),
  plugins: [react()],
  build: {
    outDir: fileURLToPath(new URL('dist/app', import.meta.url)),
    // The output is outside the app's root: Vite only empties it when told to.
    emptyOutDir: true,
    sourcemap: true,
    // One page, loaded once and then cached for good (hashed names): splitting it would gain nothing.
    chunkSizeWarningLimit: 1024,
  },
};

// Vitest runs in mode 'test'. The app's root must not leak into it: Vitest would resolve test
// files and command-line filters against client/app.
export default defineConfig(({ mode }) => (mode === 'test' ? test : app));
