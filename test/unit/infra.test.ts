import { execFile } from 'node:child_process';
import { setPriority } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { redisUrl, startRedisServer, uniquePrefix } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

describe('test infrastructure', () => {
  const redis = new Redis(redisUrl());
  afterAll(() => redis.quit());

  it('reaches the private Redis and isolates keys by prefix', async () => {
    const prefix = uniquePrefix('infra');
    expect(prefix).not.toBe(uniquePrefix('infra'));
    await redis.set(`${prefix}key`, 'value');
    expect(await redis.get(`${prefix}key`)).toBe('value');
  });

  it('waitFor resolves once the condition holds and times out with the message otherwise', async () => {
    let ready = false;
    setImmediate(() => {
      ready = true;
    });
    await waitFor(() => ready);
    await expect(waitFor(() => false, { timeout: 50, message: 'never' })).rejects.toThrow(/timed out after 50ms: never/);
  });

  it('startRedisServer gives a server that can be stopped and restarted on the same port', async () => {
    const server = await startRedisServer();
    const client = new Redis(server.url, { maxRetriesPerRequest: null });
    client.on('error', () => {});
    try {
      await client.set('k', 'v');
      await server.stop();
      await waitFor(() => client.status !== 'ready', { message: () => `client status ${client.status}` });
      await server.restart();
      // Offline commands are queued until ioredis reconnects; the restarted server is empty.
      expect(await client.get('k')).toBeNull();
      expect(server.url).toBe(`redis://127.0.0.1:${server.port}`);
    } finally {
      client.disconnect();
      await server.stop();
    }
  });

  // Vitest strips types without checking them, and the build compiles only what ships: without
  // this, a type error in a test or in bench/ would pass CI. At low priority: the other test files
  // run meanwhile on the same two cores, some of them timing a throttle.
  it('type-checks everything tsconfig.json includes (npm run typecheck)', async () => {
    const cwd = fileURLToPath(new URL('../../', import.meta.url));
    const outcome = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = execFile('npm', ['run', '--silent', 'typecheck'], { cwd }, (error, stdout, stderr) => {
        resolve({ code: error === null ? 0 : (typeof error.code === 'number' ? error.code : null), output: `${stdout}${stderr}` });
      });
      if (child.pid !== undefined) setPriority(child.pid, 10);
    });
    expect(outcome.output).toBe('');
    expect(outcome.code).toBe(0);
  }, 120_000);
});
