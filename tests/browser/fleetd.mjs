/*
 * fleetd.mjs - what the browser scripts share: a fleetd of their own on
 * free ports (Redis' start_server), a minimal RESP client with pipelining,
 * real NYC positions, and Debian's chromium through playwright-core.
 */
import {spawn} from 'node:child_process';
import {existsSync, mkdtempSync, readFileSync, rmSync} from 'node:fs';
import {createRequire} from 'node:module';
import net from 'node:net';
import {tmpdir} from 'node:os';
import {dirname, join, resolve} from 'node:path';
import {fileURLToPath} from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const TRIPS_CSV = resolve(ROOT, '../shared/data/trips/nyc_taxi_one_driver_2013-01.csv');

/* A failed check: its message is the test's whole report. */
export class Failure extends Error {}

export function check(cond, msg) {
    if (!cond) throw new Failure(msg);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function freePort() {
    return new Promise((res, rej) => {
        const s = net.createServer();
        s.on('error', rej);
        s.listen(0, '127.0.0.1', () => {
            const {port} = s.address();
            s.close(() => res(port));
        });
    });
}

/*
 * Starts bin with --port P --http-port H --dir <fresh temp dir> (cwd: the
 * repository, where build/web is), waits for its "ready" line on stdout and
 * GET /readyz 200. Returns {port, httpPort, base, output(), stop()}; stop()
 * sends SIGTERM (SIGKILL after 5 s) and removes the directory.
 */
export async function startFleetd(bin, log = () => {}) {
    const port = await freePort();
    let httpPort = await freePort();
    while (httpPort === port) httpPort = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'fleetd-browser-'));
    const args = ['--port', String(port), '--http-port', String(httpPort), '--dir', dir];
    log(`starting ${bin} ${args.join(' ')}`);
    const proc = spawn(bin, args, {cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe']});
    let output = '';
    const f = {
        port, httpPort, proc,
        base: `http://127.0.0.1:${httpPort}`,
        output: () => output,
        async stop() {
            if (proc.exitCode === null && proc.signalCode === null) {
                const exited = new Promise((r) => proc.once('exit', r));
                proc.kill('SIGTERM');
                const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
                await exited;
                clearTimeout(t);
            }
            rmSync(dir, {recursive: true, force: true});
        },
    };
    const ready = new Promise((res, rej) => {
        let out = '';
        proc.on('error', (e) => rej(new Failure(`cannot start ${bin}: ${e.message}`)));
        proc.on('exit', (code, sig) => rej(new Failure(`fleetd exited early (code ${code}, signal ${sig})`)));
        proc.stdout.on('data', (d) => {
            output += d;
            out += d;
            if (/ready/.test(out)) res();
        });
        proc.stderr.on('data', (d) => { output += d; });
    });
    let timer;
    const timeout = new Promise((res, rej) => {
        timer = setTimeout(() => rej(new Failure('fleetd printed no "ready" line within 15 s')), 15000);
    });
    try {
        await Promise.race([ready, timeout]);
        let last = '';
        for (let i = 0; i < 100; i++) {
            try {
                const r = await fetch(`${f.base}/readyz`);
                if (r.status === 200) return f;
                last = `status ${r.status}`;
            } catch (e) {
                last = e.message;
            }
            await sleep(100);
        }
        throw new Failure(`GET /readyz never answered 200 (${last})`);
    } catch (e) {
        await f.stop();
        e.fleetdOutput = output;
        throw e;
    } finally {
        clearTimeout(timer);
    }
}

/* A minimal RESP2 client; replies come back in order, so commands pipeline. */
export class Resp {
    constructor(port) {
        this.port = port;
        this.chunks = [];
        this.buf = Buffer.alloc(0);
        this.waiting = [];
    }

    connect() {
        return new Promise((res, rej) => {
            this.sock = net.connect(this.port, '127.0.0.1', res);
            this.sock.on('error', rej);
            this.sock.on('data', (d) => {
                this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
                this.drain();
            });
        });
    }

    // One reply at offset i: [value, next offset], or null while incomplete.
    parse(i) {
        const eol = this.buf.indexOf('\r\n', i);
        if (eol < 0) return null;
        const type = String.fromCharCode(this.buf[i]);
        const line = this.buf.toString('utf8', i + 1, eol);
        const next = eol + 2;
        if (type === '+') return [line, next];
        if (type === '-') return [new Error(line), next];
        if (type === ':') return [Number(line), next];
        if (type === '$') {
            const n = Number(line);
            if (n < 0) return [null, next];
            if (this.buf.length < next + n + 2) return null;
            return [this.buf.toString('utf8', next, next + n), next + n + 2];
        }
        if (type === '*') {
            const n = Number(line);
            const out = [];
            let j = next;
            for (let k = 0; k < n; k++) {
                const r = this.parse(j);
                if (!r) return null;
                out.push(r[0]);
                j = r[1];
            }
            return [out, j];
        }
        throw new Failure(`unexpected RESP reply type '${type}'`);
    }

    drain() {
        let off = 0;
        while (this.waiting.length) {
            const r = this.parse(off);
            if (!r) break;
            off = r[1];
            this.waiting.shift()(r[0]);
        }
        this.buf = this.buf.subarray(off);
    }

    static encode(args) {
        let s = `*${args.length}\r\n`;
        for (const a of args) {
            const v = String(a);
            s += `$${Buffer.byteLength(v)}\r\n${v}\r\n`;
        }
        return s;
    }

    command(...args) {
        this.sock.write(Resp.encode(args));
        return new Promise((res) => this.waiting.push(res));
    }

    async ok(...args) {
        const r = await this.command(...args);
        if (r instanceof Error) throw new Failure(`${args.join(' ')}: ${r.message}`);
        return r;
    }

    /* Sends every command in batches without waiting; returns the replies. */
    async pipeline(commands, batch = 5000) {
        const replies = [];
        for (let i = 0; i < commands.length; i += batch) {
            const part = commands.slice(i, i + batch);
            const done = part.map(() => new Promise((res) => this.waiting.push(res)));
            this.sock.write(part.map(Resp.encode).join(''));
            replies.push(...(await Promise.all(done)));
        }
        return replies;
    }

    close() {
        this.sock.end();
    }
}

/* Real taxi pickups in NYC, distinct to ~100 m, in file order. */
export function nycPickups(n) {
    const out = [];
    const seen = new Set();
    for (const line of readFileSync(TRIPS_CSV, 'utf8').split('\n')) {
        const f = line.split(',');
        const lon = Number(f[10]), lat = Number(f[11]);
        if (!(lon > -74.3 && lon < -73.6 && lat > 40.45 && lat < 41.0)) continue;
        const key = `${lon.toFixed(3)},${lat.toFixed(3)}`;
        if (seen.has(key)) continue;
        seen.add(key);
        out.push([lon, lat]);
        if (out.length === n) break;
    }
    check(out.length === n, `only ${out.length} distinct pickups in ${TRIPS_CSV}`);
    return out;
}

/* Debian's chromium, headless, WebGL through SwiftShader. */
export async function launchChromium() {
    check(existsSync(CHROMIUM), `no browser at ${CHROMIUM}`);
    // playwright-core lives in web/node_modules, not on this file's path.
    const {chromium} = createRequire(join(ROOT, 'web/package.json'))('playwright-core');
    return chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync',
            '--use-angle=swiftshader', '--enable-unsafe-swiftshader'],
    });
}
