import type { TestProject } from 'vitest/node';
import { startRedisServer } from './redis-process.js';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

/** One private Redis for the whole run; tests isolate themselves by key prefix. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const redis = await startRedisServer();
  project.provide('redisUrl', redis.url);
  return () => redis.stop();
}
