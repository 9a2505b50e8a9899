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
const ROUNDS = parseInt(process.env.ROUNDS || "5", 10);
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
        const [vw, vh] = (process.env.VIEWPORT || '1280x800').split('x').map(Number);
        const page = await browser.newPage({viewport: {width: vw, height: vh}});
        const errors = [];
        page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
        page.on('pageerror', (e) => errors.push(e.message));
        const tLoad = Date.now();
        await page.goto(`${fleetd.base}/${process.env.QUERY || ""}`);
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
        log(`refresh (median of ${samples.length}): ${med('lastRefreshMs').toFixed(0)} ms, in the worker fetch+JSON ${med('lastFetchMs').toFixed(0)} ms`
            + ` + arrays ${med('lastParseMs').toFixed(0)} ms; one frame of points ${med('lastDrawMs').toFixed(1)} ms; response ${(bytes / 1048576).toFixed(1)} MiB`);

        const fps = (pan) => page.evaluate(([doPan, ms]) => new Promise((done) => {
            const map = window.fleetdDashboard.map;
            const home = map.getCenter(); // every run pans over the same view
            const times = [];
            const t0 = performance.now();
            let k = 0;
            function frame(t) {
                times.push(t);
                if (doPan) map.panBy([(k++ % 200) < 100 ? 3 : -3, 0], {animate: false});
                if (t - t0 < ms) requestAnimationFrame(frame);
                else {
                    map.jumpTo({center: home});
                    const d = times.slice(1).map((x, i) => x - times[i]).sort((a, b) => a - b);
                    done({fps: (times.length - 1) / ((times[times.length - 1] - times[0]) / 1000),
                        p50: d[d.length >> 1], p95: d[Math.floor(d.length * 0.95)]});
                }
            }
            requestAnimationFrame(frame);
        }), [pan, 3000]);
        const idle = await fps(false);
        const pan = await fps(true);
        const f = (r) => `${r.fps.toFixed(1)} fps (frame p50 ${r.p50.toFixed(0)} ms, p95 ${r.p95.toFixed(0)} ms)`;
        log(`idle: ${f(idle)}`);
        log(`panning, every frame redrawn: ${f(pan)}`);
        // What the frame time is made of: the same pan with the base map's
        // layers hidden, with the points not drawn, and with both, in turns.
        const setup = (base, pts) => page.evaluate(([b, p]) => {
            const d = window.fleetdDashboard;
            for (const l of d.map.getStyle().layers) d.map.setLayoutProperty(l.id, 'visibility', b ? 'visible' : 'none');
            const layer = d.points;
            if (!layer.realDraw) layer.realDraw = layer.draw;
            layer.draw = p ? layer.realDraw : () => layer.ctx.clearRect(0, 0, layer.canvas.width, layer.canvas.height);
            layer.draw();
        }, [base, pts]);
        const modes = [['base map + points', true, true], ['base map only', true, false],
            ['points only', false, true], ['neither', false, false]];
        const got = new Map(modes.map(([name]) => [name, []]));
        for (let round = 0; round < (process.env.LAYERS ? 1 : ROUNDS); round++) {
            for (const [name, base, pts] of modes) {
                await setup(base, pts);
                const r = await fps(true);
                if (process.env.DEBUG) log(`${name} ${r.fps.toFixed(1)} ratio ${await page.evaluate(() => window.fleetdDashboard.map.getPixelRatio())}`);
                got.get(name).push(r);
            }
        }
        if (process.env.LAYERS) { // each base layer alone (with the points)
            const ids = await page.evaluate(() => window.fleetdDashboard.map.getStyle().layers.map((l) => l.id));
            for (const id of ids) {
                await page.evaluate((x) => {
                    const m = window.fleetdDashboard.map;
                    for (const l of m.getStyle().layers) m.setLayoutProperty(l.id, 'visibility', l.id === x ? 'visible' : 'none');
                }, id);
                log(`  panning, only ${id}: ${f(await fps(true))}`);
            }
        }
        await setup(true, true);
        for (const [name] of modes) {
            const runs = got.get(name).sort((x, y) => x.fps - y.fps);
            log(`  panning, ${name}: median of ${ROUNDS} ${f(runs[ROUNDS >> 1])}; runs ${runs.map((r) => r.fps.toFixed(1)).join(', ')} fps`);
        }

        mkdirSync(join(ROOT, 'build/test-artifacts'), {recursive: true});
        await page.evaluate(() => new Promise((r) => { // at rest: sharp again, tiles loaded
            window.fleetdDashboard.map.once('idle', () => setTimeout(r, 600));
            window.fleetdDashboard.map.triggerRepaint();
        }));
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
