#!/usr/bin/env node
/*
 * measure_dashboard.mjs - how the dashboard holds up with many vehicles (not
 * part of the suite; run by hand: node tests/browser/measure_dashboard.mjs
 * [N=100000]).
 *
 * Starts its own fleetd (FLEETD_BIN, default build/fleetd), pipelines N
 * VEHICLE.UPDATE over RESP at real NYC taxi pickups spread by ~300 m, loads
 * the page in headless chromium (WebGL on SwiftShader: the CPU draws, so
 * frame rates are a floor for any machine with a GPU) and reports:
 *   - one refresh: GET /v1/vehicles?format=compact (fetch + JSON) and the
 *     typed arrays + layer update, as the page itself times them;
 *   - frames per second while idle and while the map pans every frame
 *     (each frame redraws the base map and all N points).
 * Screenshot: build/test-artifacts/dashboard-<N>.png.
 */
import {mkdirSync} from 'node:fs';
import {join, resolve} from 'node:path';

import {ROOT, Resp, check, launchChromium, nycPickups, startFleetd} from './fleetd.mjs';

const N = parseInt(process.argv[2] || '100000', 10);
const FLEETD_BIN = resolve(ROOT, process.env.FLEETD_BIN || 'build/fleetd');
const T0 = Date.now();
const log = (m) => console.log(`[${((Date.now() - T0) / 1000).toFixed(1)}s] ${m}`);

function gauss() {
    return Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
}

async function main() {
    const fleetd = await startFleetd(FLEETD_BIN, log);
    let browser = null;
    try {
        const resp = new Resp(fleetd.port);
        await resp.connect();
        const pickups = nycPickups(400);
        const ts = Date.now() - 60000;
        const cmds = [];
        for (let i = 0; i < N; i++) {
            const [lon, lat] = pickups[i % pickups.length];
            const r = Math.random();
            const status = r < 0.6 ? 'available' : r < 0.9 ? 'busy' : 'offline';
            cmds.push(['VEHICLE.UPDATE', `v${i}`, (lon + gauss() * 0.004).toFixed(6), (lat + gauss() * 0.003).toFixed(6),
                'TS', ts, 'STATUS', status, 'FLEET', 'yellow']);
        }
        const t1 = Date.now();
        const replies = await resp.pipeline(cmds);
        const bad = replies.filter((x) => x !== 'OK');
        check(bad.length === 0, `${bad.length} updates not OK, e.g. ${bad[0]}`);
        log(`put in ${N} vehicles over RESP in ${Date.now() - t1} ms`);
        resp.close();

        browser = await launchChromium();
        const page = await browser.newPage({viewport: {width: 1280, height: 800}});
        const errors = [];
        page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
        page.on('pageerror', (e) => errors.push(e.message));
        const tLoad = Date.now();
        await page.goto(`${fleetd.base}/`);
        await page.evaluate(() => window.fleetdDashboard.ready);
        // Zoomed in, the page asks for the viewport only: the fit leaves out
        // the outer 1% on each side, so not quite all N are shown.
        await page.waitForFunction((n) => window.fleetdDashboard.vehicleCount() >= 0.9 * n, N, {timeout: 60000});
        const shown = await page.textContent('#vehicle-count');
        log(`page shows ${shown} of ${N} vehicles ${Date.now() - tLoad} ms after navigation`);

        // Refresh cost, as the page measures it, over several refreshes.
        const samples = await page.evaluate(() => new Promise((done) => {
            const out = [];
            let last = null;
            const iv = setInterval(() => {
                const s = window.fleetdDashboard.stats();
                if (s.lastRefreshMs !== last) {
                    last = s.lastRefreshMs;
                    out.push(s);
                }
                if (out.length >= 6) {
                    clearInterval(iv);
                    done(out.slice(1));
                }
            }, 50);
        }));
        const med = (k) => samples.map((s) => s[k]).sort((a, b) => a - b)[samples.length >> 1];
        const bytes = (await (await fetch(`${fleetd.base}/v1/vehicles?format=compact&limit=200000`)).arrayBuffer()).byteLength;
        log(`refresh (median of ${samples.length}): ${med('lastRefreshMs').toFixed(0)} ms = fetch+JSON ${med('lastFetchMs').toFixed(0)} ms`
            + ` + arrays/layer ${med('lastParseMs').toFixed(0)} ms; response ${(bytes / 1048576).toFixed(1)} MiB`);

        const fps = (pan) => page.evaluate(([doPan, ms]) => new Promise((done) => {
            const map = window.fleetdDashboard.map;
            const times = [];
            const t0 = performance.now();
            let k = 0;
            function frame(t) {
                times.push(t);
                if (doPan) map.panBy([(k++ % 200) < 100 ? 3 : -3, 0], {animate: false});
                if (t - t0 < ms) requestAnimationFrame(frame);
                else {
                    const d = times.slice(1).map((x, i) => x - times[i]).sort((a, b) => a - b);
                    done({fps: (times.length - 1) / ((times[times.length - 1] - times[0]) / 1000),
                        p50: d[d.length >> 1], p95: d[Math.floor(d.length * 0.95)]});
                }
            }
            requestAnimationFrame(frame);
        }), [pan, 5000]);
        const idle = await fps(false);
        const pan = await fps(true);
        const f = (r) => `${r.fps.toFixed(1)} fps (frame p50 ${r.p50.toFixed(0)} ms, p95 ${r.p95.toFixed(0)} ms)`;
        log(`idle: ${f(idle)}`);
        log(`panning, every frame redrawn: ${f(pan)}`);

        mkdirSync(join(ROOT, 'build/test-artifacts'), {recursive: true});
        const shot = join(ROOT, `build/test-artifacts/dashboard-${N}.png`);
        await page.screenshot({path: shot});
        log(`screenshot ${shot}`);
        if (errors.length) log(`page errors: ${errors.join(' | ')}`);
    } finally {
        if (browser) await browser.close();
        await fleetd.stop();
    }
}

main().catch((e) => {
    console.log(`FAIL: ${e.message}`);
    if (e.fleetdOutput) console.log(e.fleetdOutput.slice(-2000));
    process.exit(1);
});
