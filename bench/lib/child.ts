/**
 * Child processes with an IPC channel: the servers under test and the load generators each get a
 * process of their own, so the load never runs on the server's event loop. Every wait is bounded.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type Message = { type: string } & Record<string, unknown>;

/** The compiled bench file `relative` (to dist/bench/), e.g. 'servers/server.js'. */
export function benchFile(relative: string): string {
  return fileURLToPath(new URL(`../${relative}`, import.meta.url));
}

export class Child {
  readonly process: ChildProcess;
  /** For error messages: the file and a short first argument (a server kind, not a JSON config). */
  readonly #label: string;
  readonly #inbox: Message[] = [];
  /** Pending `next` calls; each returns true when it took the message. */
  readonly #waiters = new Set<(message: Message) => boolean>();
  readonly #exited: Promise<number | null>;
  #exitCode: number | null | undefined;
  #stderr = '';

  constructor(file: string, args: string[], execArgv: string[] = []) {
    this.process = fork(file, args, { execArgv, stdio: ['ignore', 'inherit', 'pipe', 'ipc'], serialization: 'json' });
    const first = args[0];
    this.#label = `${path.basename(file)}${first !== undefined && first.length <= 20 ? ` ${first}` : ''}`;
    this.process.stderr?.setEncoding('utf8');
    this.process.stderr?.on('data', (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-20_000);
      if (process.env['BENCH_VERBOSE']) process.stderr.write(chunk);
    });
    this.process.on('message', (message: Message) => {
      for (const waiter of this.#waiters) if (waiter(message)) return;
      this.#inbox.push(message);
    });
    this.#exited = new Promise((resolve) => {
      this.process.on('exit', (code) => {
        this.#exitCode = code;
        resolve(code);
      });
    });
  }

  get stderr(): string {
    return this.#stderr;
  }

  send(message: Message): void {
    this.process.send(message);
  }

  /** The next message of `type`; rejects after `timeoutMs`, on an "error" message, or when the child exits first. */
  next<T extends Message = Message>(type: string, timeoutMs: number): Promise<T> {
    const queued = this.#inbox.findIndex((message) => message.type === type || message.type === 'error');
    if (queued !== -1) {
      const [message] = this.#inbox.splice(queued, 1);
      if (message?.type === 'error') return Promise.reject(this.#failure(message));
      return Promise.resolve(message as T);
    }
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const done = () => {
        settled = true;
        clearTimeout(timer);
        this.#waiters.delete(waiter);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no "${type}" message from ${this.#name()} within ${timeoutMs} ms${this.#tail()}`));
      }, timeoutMs);
      const waiter = (message: Message): boolean => {
        if (message.type === 'error') {
          done();
          reject(this.#failure(message));
          return true;
        }
        if (message.type !== type) return false;
        done();
        resolve(message as T);
        return true;
      };
      this.#waiters.add(waiter);
      void this.#exited.then((code) => {
        if (settled) return;
        // Let messages sent just before the exit arrive first.
        setTimeout(() => {
          if (settled) return;
          done();
          reject(new Error(`${this.#name()} exited (code ${code}) before sending "${type}"${this.#tail()}`));
        }, 50);
      });
    });
  }

  #failure(message: Message): Error {
    return new Error(`${this.#name()} failed: ${String(message['message'])}${this.#tail()}`);
  }

  /** Sends `request` and waits for the reply of type `reply`. */
  async request<T extends Message = Message>(request: Message, reply: string, timeoutMs: number): Promise<T> {
    const answer = this.next<T>(reply, timeoutMs);
    this.send(request);
    return answer;
  }

  /** Waits for the child to exit; kills it (SIGKILL) after `timeoutMs`. */
  async exit(timeoutMs: number): Promise<number | null> {
    if (this.#exitCode !== undefined) return this.#exitCode;
    const timer = setTimeout(() => this.process.kill('SIGKILL'), timeoutMs);
    const code = await this.#exited;
    clearTimeout(timer);
    return code;
  }

  kill(): void {
    if (this.#exitCode === undefined) this.process.kill('SIGKILL');
  }

  #name(): string {
    return `${this.#label} (pid ${this.process.pid})`;
  }

  #tail(): string {
    const tail = this.#stderr.trim().split('\n').slice(-5).join('\n');
    return tail ? `\n${tail}` : '';
  }
}

const live = new Set<Child>();

/** A tracked child: `killAll()` (and process exit) ends every one still running. */
export function startChild(file: string, args: string[], execArgv: string[] = []): Child {
  const child = new Child(file, args, execArgv);
  live.add(child);
  child.process.on('exit', () => live.delete(child));
  return child;
}

export function killAll(): void {
  for (const child of live) child.kill();
}

process.on('exit', killAll);

/** In a child: sends a message to the parent. */
export function tell(message: Message): void {
  process.send?.(message);
}

/** In a child: the next message of `type` from the parent. */
export function hear<T extends Message = Message>(type: string): Promise<T> {
  return new Promise((resolve) => {
    const listener = (message: Message) => {
      if (message.type !== type) return;
      process.off('message', listener);
      resolve(message as T);
    };
    process.on('message', listener);
  });
}

/** In a child: reports an uncaught failure to the parent, then exits. */
export function failTo(parentLabel: string): (error: unknown) => void {
  return (error) => {
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    process.stderr.write(`${parentLabel}: ${message}\n`);
    tell({ type: 'error', message: error instanceof Error ? error.message : String(error) });
    setTimeout(() => process.exit(1), 50);
  };
}
