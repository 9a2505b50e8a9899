#!/usr/bin/env node
/*
 * test_dashboard.mjs - the dashboard in headless Chromium (Debian's
 * /usr/bin/chromium driven by playwright-core from web/node_modules).
 *
 * Starts its own fleetd (FLEETD_BIN, default build/fleetd) on free ports
 * with a fresh data directory, puts in 50 vehicles at real NYC taxi pickups
 * over RESP, starts a trip on one and moves it so the trip has a path, then
 * loads the page served by fleetd and checks:
 *   - no console errors, no uncaught exceptions, no failed requests;
 *   - #vehicle-count shows the 50 vehicles put in, and each is drawn: the
 *     pixel under it, read back from the points canvas, has its status'
 *     colour; a vehicle moved over RESP is redrawn at its new place within
 *     a few refreshes and is gone from the old one;
 *   - a click on the tripped vehicle's screen position shows its trip id
 *     in #trip-id (and the trip's path is drawn);
 *   - the live counters (SSE stats) show the vehicles, and a trip started
 *     while the page is open appears in #recent-trips (SSE trip_started).
 * Saves build/test-artifacts/dashboard.png. Exits 0 on success, 1 with a
 * "FAIL: ..." line otherwise; the whole run is bounded to 60 s.
 */
import {existsSync, mkdirSync} from 'node:fs';
import {join, resolve} from 'node:path';

import {Failure, ROOT, Resp, check, launchChromium, nycPickups, sleep, startFleetd} from './fleetd.mjs';

const FLEETD_BIN = resolve(ROOT, process.env.FLEETD_BIN || 'build/fleetd');
const ARTIFACTS = resolve(ROOT, 'build/test-artifacts');
const N_VEHICLES = 50;
const TIMEOUT_MS = 60000;
const T0 = Date.now();

let fleetd = null;
let browser = null;

function log(msg) {
    console.log(`[${((Date.now() - T0) / 1000).toFixed(1)}s] ${msg}`);
}

async function cleanup() {
    if (browser) await browser.close().catch(() => {});
    browser = null;
    if (fleetd) await fleetd.stop();
    fleetd = null;
}

async function fail(msg, output) {
    console.log(`FAIL: ${msg}`);
    output = output || (fleetd && fleetd.output());
    if (output) console.log(`--- fleetd output (last 2000 bytes):\n${output.slice(-2000)}`);
    await cleanup();
    process.exit(1);
}

/* 50 vehicles at real pickups over RESP, a trip on one of them with six moves. */
async function loadFleet(port) {
    const resp = new Resp(port);
    await resp.connect();
    // Timestamps a few minutes back so the trip's moves can be spaced in
    // plausible steps without running into the future.
    const t = Date.now() - 5 * 60 * 1000;
    const statuses = ['available', 'busy', 'offline'];
    const pickups = nycPickups(N_VEHICLES);
    const ids = [];
    for (let i = 0; i < pickups.length; i++) {
        const id = `cab${String(i).padStart(3, '0')}`;
        const [lon, lat] = pickups[i];
        const r = await resp.ok('VEHICLE.UPDATE', id, lon, lat, 'TS', t, 'SPEED', 0,
            'FLEET', 'yellow', 'STATUS', statuses[i % 3]);
        check(r === 'OK', `VEHICLE.UPDATE ${id}: ${r}`);
        ids.push(id);
    }
    // The tripped vehicle: the 8th (an "available" one that turns busy).
    const vid = ids[7];
    const [lon0, lat0] = pickups[7];
    const tripId = await resp.ok('TRIP.START', vid, 'TS', t + 1000);
    check(typeof tripId === 'string' && tripId.length > 0, `TRIP.START answered ${JSON.stringify(tripId)}`);
    // Six moves of ~140 m north-east, 20 s apart (~25 km/h).
    let lon = lon0, lat = lat0;
    for (let k = 1; k <= 6; k++) {
        lon += 0.0012;
        lat += 0.0008;
        const r = await resp.ok('VEHICLE.UPDATE', vid, lon.toFixed(6), lat.toFixed(6), 'TS', t + 1000 + k * 20000,
            'SPEED', 25, 'STATUS', 'busy');
        check(r === 'OK', `VEHICLE.UPDATE ${vid} move ${k}: ${r}`);
    }
    resp.close();
    return {ids, vid, tripId};
}

/* ---- the browser ---- */

// What the page draws for available, busy, offline (web/src/main.js COLORS).
const STATUS_RGB = [[46, 204, 113], [255, 140, 40], [130, 140, 155]];

/* Every vehicle in view is drawn in its status' colour (loadFleet gives
 * vehicle i status i % 3; the tripped one turned busy), and one moved over
 * RESP shows up at its new place. Points can overlap, so a pixel of another
 * status' colour is a failure only when no vehicle of that colour is there. */
async function checkDrawn(page, ids, port) {
    const seen = await page.evaluate((list) => list.map((id) => {
        const d = window.fleetdDashboard;
        const xy = d.vehicleScreenPosition(id);
        return xy && {id, xy, rgba: d.points.pixelAt(xy[0], xy[1])};
    }), ids);
    const want = (i) => (i === 7 ? 1 : i % 3);
    let drawn = 0;
    for (let i = 0; i < ids.length; i++) {
        const v = seen[i];
        if (!v) continue; // out of view (the fit leaves out the outermost)
        const [r, g, b, a] = v.rgba || [0, 0, 0, 0];
        const rgb = STATUS_RGB[want(i)];
        const ok = a === 255 && r === rgb[0] && g === rgb[1] && b === rgb[2];
        const covered = seen.some((o, j) => o && j !== i && want(j) !== want(i)
            && Math.hypot(o.xy[0] - v.xy[0], o.xy[1] - v.xy[1]) < 6);
        check(ok || covered, `vehicle ${v.id} at ${v.xy.map((x) => x.toFixed(1))} is drawn as rgba(${v.rgba}), want rgb(${rgb})`);
        drawn += ok;
    }
    check(drawn >= ids.length * 0.8, `only ${drawn} of ${ids.length} vehicles are drawn in their colour`);
    log(`${drawn} of ${ids.length} vehicles drawn in their status' colour`);

    // Move one vehicle ~1 km east over RESP: the page redraws it there.
    const mover = ids[0];
    const before = seen[0] ? seen[0].xy : null;
    check(before, `${mover} is not in view`);
    const lonlat = await page.evaluate((id) => window.fleetdDashboard.vehicleLngLat(id), mover);
    const resp = new Resp(port);
    await resp.connect();
    const r = await resp.ok('VEHICLE.UPDATE', mover, (lonlat[0] + 0.012).toFixed(6), lonlat[1].toFixed(6));
    resp.close();
    check(r === 'OK', `VEHICLE.UPDATE ${mover}: ${r}`);
    const moved = await page.waitForFunction(([id, x0]) => {
        const d = window.fleetdDashboard;
        const xy = d.vehicleScreenPosition(id);
        if (!xy || xy[0] - x0 < 3) return null;
        const px = d.points.pixelAt(xy[0], xy[1]);
        return px && px[0] === 46 && px[1] === 204 && px[2] === 113 ? xy : null;
    }, [mover, before[0]], {timeout: 5000}).then((h) => h.jsonValue()).catch(() => null);
    check(moved, `${mover} moved 0.012 degrees east over RESP is not redrawn at its new place within 5 s`);
    // ...and is gone from the old place, unless another vehicle is drawn there.
    const old = await page.evaluate(([x, y]) => window.fleetdDashboard.points.pixelAt(x, y), before);
    const neighbour = seen.some((o, j) => o && j !== 0 && Math.hypot(o.xy[0] - before[0], o.xy[1] - before[1]) < 6);
    check(neighbour || (old && old[3] === 0), `${mover}'s old place still shows rgba(${old})`);
    log(`${mover} redrawn from x=${before[0].toFixed(1)} to x=${moved[0].toFixed(1)}`);
}

async function main() {
    check(existsSync(join(ROOT, 'build/web/index.html')), 'build/web/index.html missing: run make web');
    fleetd = await startFleetd(FLEETD_BIN, log);
    const {port, base} = fleetd;
    const {ids, vid, tripId} = await loadFleet(port);
    log(`put in ${ids.length} vehicles; trip ${tripId} on ${vid}`);

    // The API answers what the page will ask.
    const probe = await fetch(`${base}/v1/vehicles?format=compact&limit=200000`);
    check(probe.status === 200, `GET /v1/vehicles?format=compact answered ${probe.status}`);
    const compact = await probe.json();
    check(Array.isArray(compact.vehicles) && compact.vehicles.length === ids.length,
        `GET /v1/vehicles?format=compact listed ${compact.vehicles?.length} vehicles, want ${ids.length}`);

    browser = await launchChromium();
    const page = await browser.newPage({viewport: {width: 1280, height: 800}});
    const problems = [];
    let closing = false;
    page.on('console', (m) => {
        if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => {
        // The event stream is cut when the page goes away; that is not a failure.
        if (!closing) problems.push(`request failed: ${r.method()} ${r.url()} (${r.failure()?.errorText})`);
    });
    page.on('response', (r) => {
        if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`);
    });

    log(`loading ${base}/`);
    const res = await page.goto(`${base}/`, {waitUntil: 'load'});
    check(res && res.status() === 200, `GET / answered ${res && res.status()}`);
    await page.waitForFunction(() => window.fleetdDashboard && window.fleetdDashboard.ready, null, {timeout: 10000})
        .catch(() => { throw new Failure('window.fleetdDashboard never appeared (did app.js load?)'); });
    await page.evaluate(() => window.fleetdDashboard.ready);

    const want = String(ids.length); // as shown: 50 needs no thousands separator
    await page.waitForFunction((n) => document.querySelector('#vehicle-count')?.textContent.trim() === n,
        want, {timeout: 15000}).catch(async () => {
        const shown = await page.textContent('#vehicle-count').catch(() => '?');
        throw new Failure(`#vehicle-count shows "${shown}", want "${want}"`);
    });
    log(`#vehicle-count shows ${want}`);
    check(await page.evaluate(() => window.fleetdDashboard.vehicleCount()) === ids.length,
        'fleetdDashboard.vehicleCount() disagrees with #vehicle-count');

    // Let the map settle (fit, region outlines) before clicking.
    await page.evaluate(() => new Promise((r) => {
        const m = window.fleetdDashboard.map;
        if (m.loaded() && !m.isMoving()) r(); else m.once('idle', r);
        setTimeout(r, 5000);
    }));
    await checkDrawn(page, ids, port);
    const xy = await page.evaluate((id) => window.fleetdDashboard.vehicleScreenPosition(id), vid);
    check(Array.isArray(xy), `vehicleScreenPosition(${vid}) is ${JSON.stringify(xy)}: the vehicle is not in view`);
    const box = await page.locator('#map').boundingBox();
    log(`clicking ${vid} at ${xy.map((v) => v.toFixed(1)).join(',')}`);
    await page.mouse.click(box.x + xy[0], box.y + xy[1]);
    await page.waitForFunction((t) => document.querySelector('#trip-id')?.textContent.trim() === t,
        tripId, {timeout: 10000}).catch(async () => {
        const shown = await page.textContent('#trip-id').catch(() => '?');
        const sel = await page.textContent('#vehicle-id').catch(() => '?');
        throw new Failure(`after the click #trip-id shows "${shown}" (vehicle "${sel}"), want "${tripId}" of ${vid}`);
    });
    log(`#trip-id shows ${tripId}`);
    const state = (await page.textContent('#trip-state')).trim();
    check(state === 'running', `#trip-state shows "${state}", want "running"`);
    // The path is on the map: the trip source holds a LineString of the moves.
    await page.waitForFunction(() => window.fleetdDashboard.map.querySourceFeatures('trip')
        .some((f) => f.geometry.type === 'LineString' && f.geometry.coordinates.length >= 2), null, {timeout: 5000})
        .catch(() => { throw new Failure("the trip's path is not drawn (no LineString in the map's trip source)"); });

    // The live counters and "recent trips" come from the SSE stream: a trip
    // started now shows up there.
    await page.waitForFunction((n) => document.querySelector('#s-vehicles')?.textContent.trim() === n,
        want, {timeout: 5000}).catch(async () => {
        throw new Failure(`the live counter #s-vehicles shows "${await page.textContent('#s-vehicles')}", want "${want}"`);
    });
    const resp = new Resp(port);
    await resp.connect();
    const trip2 = await resp.ok('TRIP.START', ids[3]);
    resp.close();
    await page.waitForFunction((t) => [...document.querySelectorAll('#recent-trips a')].some((a) => a.textContent === t),
        trip2, {timeout: 5000}).catch(() => {
        throw new Failure(`trip ${trip2} started on ${ids[3]} never appeared in #recent-trips (SSE trip_started)`);
    });
    log(`#recent-trips lists ${trip2}`);
    await sleep(1000); // one more refresh, so the plots have points
    mkdirSync(ARTIFACTS, {recursive: true});
    const shot = join(ARTIFACTS, 'dashboard.png');
    await page.screenshot({path: shot});
    log(`screenshot ${shot}`);

    check(problems.length === 0, `the page reported problems:\n  ${problems.join('\n  ')}`);
    closing = true;
    await cleanup();
    log('ok');
}

const timer = setTimeout(() => fail(`timed out after ${TIMEOUT_MS / 1000} s`), TIMEOUT_MS);
main().then(() => {
    clearTimeout(timer);
    console.log('dashboard: 1 passed, 0 failed');
    process.exit(0);
}, (e) => fail(e instanceof Failure ? e.message : (e && e.stack) || String(e), e && e.fleetdOutput));
