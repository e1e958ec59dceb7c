import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { startRedisServer } from './redis-process.js';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

/**
 * One private Redis for the whole run (tests isolate themselves by key prefix), and one build of
 * dist/ for the tests that run the built entry points and the built editor (test/e2e): built here,
 * once, so parallel test files never write dist/ at the same time. The editor is rebuilt only when
 * stale.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const cwd = fileURLToPath(new URL('../../', import.meta.url));
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { cwd, stdio: 'inherit' });
  // In a process of its own: Vitest's NODE_ENV=test would make Vite build React's development bundle.
  execFileSync(process.execPath, ['dist/scripts/build-app.js'], { cwd, stdio: 'inherit' });
  const redis = await startRedisServer();
  project.provide('redisUrl', redis.url);
  return () => redis.stop();
}
