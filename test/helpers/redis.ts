import { randomUUID } from 'node:crypto';
import { inject } from 'vitest';

export { startRedisCluster, startRedisServer, type RedisCluster, type RedisServer, type RedisServerOptions } from './redis-process.js';

/** URL of the private Redis shared by the run (started in global-setup.ts). */
export function redisUrl(): string {
  return inject('redisUrl');
}

/** A key prefix no other test (or test file running in parallel) uses. */
export function uniquePrefix(name: string): string {
  return `t:${name}:${randomUUID().slice(0, 8)}:`;
}
