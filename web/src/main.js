/*
 * main.js - the fleetd live dashboard.
 *
 * Why shaped so:
 * - maplibre-gl draws the base with no tile server: a plain background and
 *   the GeoJSON outlines shipped in regions/ (countries, US states, NYC
 *   boroughs and taxi zones), listed by regions/index.json which the build
 *   writes, so a tree without the files asks for none of them. A raster tile
 *   URL may be given with ?tiles=https://host/{z}/{x}/{y}.png.
 * - Vehicles are pixels on a 2D canvas over the map (points.js: why not
 *   WebGL there), fed with typed arrays that a worker (vehicles-worker.js)
 *   builds from GET /v1/vehicles?format=compact once a second: the 5 MB of
 *   JSON at 100,000 vehicles is parsed off the page's thread, and no
 *   per-vehicle object exists. Zoomed in, the request carries the
 *   viewport's bbox.
 * - A click is hit-tested on the same arrays (the nearest point on screen
 *   within a few pixels): no picking pass, and the answer is deterministic.
 * - Supply and demand come from GET /v1/areas as GeoJSON cells, drawn as a
 *   maplibre fill under the vehicles; the geohash level is the finest whose
 *   cells in the viewport stay under a few thousand.
 * - Counters and their uPlot plots are fed by the SSE stream
 *   /v1/events?types=stats,trips (GET /v1/stats is polled only while the
 *   stream is silent); trip_started / trip_ended feed "recent trips".
 * - For tests: window.fleetdDashboard = {map, vehicleCount(),
 *   vehicleScreenPosition(id) -> [x, y] in CSS pixels relative to the map
 *   container (null when unknown or out of view), vehicleLngLat(id),
 *   points (the PointLayer: pixelAt(x, y)), ready: Promise}.
 */
import * as maplibregl from 'maplibre-gl';
import workerSource from 'maplibre-gl/dist/maplibre-gl-worker.mjs';
import uPlot from 'uplot';

import {HttpError, getJSON} from './http.js';
import {PointLayer} from './points.js';

import 'maplibre-gl/dist/maplibre-gl.css';
import 'uplot/dist/uPlot.min.css';
import './style.css';

// The worker is bundled into app.js and started from a blob: URL (same
// origin), so the build is three files and the server's MIME types for
// module scripts do not matter.
maplibregl.setWorkerUrl(URL.createObjectURL(new Blob([workerSource], {type: 'text/javascript'})));

const params = new URLSearchParams(location.search);
const REFRESH_MS = clampInt(params.get('refresh'), 250, 60000, 1000);
const AREAS_MS = 5000;
const PAGE_LIMIT = 200000;
const MAX_POINTS = 1000000; // pages followed per refresh stop here
const BBOX_ZOOM = 9; // from this zoom on, vehicles are asked for the viewport only
const NYC = [[-74.26, 40.49], [-73.70, 40.92]];
const TOLERANCE = clampInt(params.get('tolerance'), 0, 8, 2); // outline simplification, in tile pixels
const HISTORY = 120; // seconds of counters kept in the plots
const STATUS = ['available', 'busy', 'offline'];
// By status byte: available, busy, offline, any other status.
const COLORS = [[46, 204, 113], [255, 140, 40], [130, 140, 155], [200, 80, 220]];

const $ = (id) => document.getElementById(id);

function clampInt(s, lo, hi, dflt) {
    const v = parseInt(s ?? '', 10);
    return Number.isFinite(v) ? Math.min(hi, Math.max(lo, v)) : dflt;
}

/* ---- HTTP ---- */

const errors = new Map(); // source -> message
function setError(source, err) {
    if (err) errors.set(source, String(err.message || err));
    else errors.delete(source);
    const box = $('error');
    box.hidden = errors.size === 0;
    box.textContent = [...errors.values()].join('\n');
}

/* ---- the map ---- */

function baseStyle() {
    const sources = {
        countries: {type: 'geojson', data: emptyFC()},
        states: {type: 'geojson', data: emptyFC()},
        // 98,000 and 76,000 vertices: simplified harder than the default
        // (0.375) they cost a third of the frame where WebGL has no GPU.
        boroughs: {type: 'geojson', data: emptyFC(), tolerance: TOLERANCE},
        zones: {type: 'geojson', data: emptyFC(), tolerance: TOLERANCE},
        areas: {type: 'geojson', data: emptyFC()},
        trip: {type: 'geojson', data: emptyFC()},
    };
    const layers = [{id: 'background', type: 'background', paint: {'background-color': '#0d1520'}}];
    const tiles = params.get('tiles');
    if (tiles) {
        sources.tiles = {
            type: 'raster', tiles: [tiles], tileSize: 256, maxzoom: 19,
            attribution: params.get('attribution') || '',
        };
        layers.push({id: 'tiles', type: 'raster', source: 'tiles', paint: {'raster-opacity': 0.85}});
    }
    layers.push(
        // Land: the 1:110m countries far out; close in their coast is too
        // coarse, and the taxi zones (NYC's land) take over.
        {id: 'countries-fill', type: 'fill', source: 'countries', maxzoom: 9,
            paint: {'fill-color': '#152232', 'fill-opacity': tiles ? 0 : ['interpolate', ['linear'], ['zoom'], 7, 1, 9, 0]}},
        {id: 'zones-fill', type: 'fill', source: 'zones', minzoom: 7,
            paint: {'fill-color': '#152232', 'fill-opacity': tiles ? 0 : ['interpolate', ['linear'], ['zoom'], 7, 0, 9, 1]}},
        {id: 'countries-line', type: 'line', source: 'countries', paint: {'line-color': '#33506e', 'line-width': 0.8}},
        {id: 'states-line', type: 'line', source: 'states', minzoom: 2, paint: {'line-color': '#2a4560', 'line-width': 0.6}},
        {id: 'areas-fill', type: 'fill', source: 'areas', paint: {'fill-color': heatColor('supply'), 'fill-opacity': 0.55}},
        {id: 'zones-line', type: 'line', source: 'zones', minzoom: 8, paint: {'line-color': '#3b5b7a', 'line-width': 0.5, 'line-opacity': 0.8}},
        {id: 'boroughs-line', type: 'line', source: 'boroughs', minzoom: 6, paint: {'line-color': '#5d84aa', 'line-width': 1.2}},
        {id: 'trip-casing', type: 'line', source: 'trip', layout: {'line-cap': 'round', 'line-join': 'round'}, paint: {'line-color': '#0d1520', 'line-width': 7}},
        {id: 'trip-line', type: 'line', source: 'trip', layout: {'line-cap': 'round', 'line-join': 'round'}, paint: {'line-color': '#4fc3f7', 'line-width': 3.5}},
    );
    return {version: 8, sources, layers};
}

function emptyFC() {
    return {type: 'FeatureCollection', features: []};
}

const map = new maplibregl.Map({
    container: 'map',
    style: baseStyle(),
    bounds: NYC,
    fitBoundsOptions: {padding: 20},
    attributionControl: {compact: true},
    fadeDuration: 0,
    dragRotate: false,
    pitchWithRotate: false,
    maxPitch: 0, // points.js maps Mercator to the screen affinely
});
map.touchZoomRotate.disableRotation();
map.keyboard.disableRotation();
map.addControl(new maplibregl.NavigationControl({showCompass: false}), 'bottom-right');
map.addControl(new maplibregl.ScaleControl({unit: 'metric'}), 'bottom-right');

const points = new PointLayer(map, COLORS);

/* Where WebGL runs on the CPU (SwiftShader, llvmpipe: no GPU), a frame of
 * the base map costs ~80 ms at 1280x800 and nearly all of it is filling
 * pixels (at a quarter of the pixels it keeps 60 fps). So there the base map
 * is drawn at half resolution while it moves and sharp again 300 ms after it
 * stops; the vehicles (their own canvas) stay sharp throughout. */
function softwareWebGL() {
    const c = map.getCanvas();
    const gl = c.getContext('webgl2') || c.getContext('webgl');
    const ext = gl && gl.getExtension('WEBGL_debug_renderer_info');
    const name = ext ? String(gl.getParameter(ext.UNMASKED_RENDERER_WEBGL)) : '';
    return /swiftshader|llvmpipe|softpipe|software/i.test(name);
}

if (params.get('lowres') !== '0' && softwareWebGL()) {
    let restore = null;
    let lowered = false;
    let resizing = false; // setPixelRatio resizes, which fires move events
    const setRatio = (r) => {
        resizing = true;
        try {
            map.setPixelRatio(r);
        } finally {
            resizing = false;
        }
    };
    map.on('movestart', () => {
        if (resizing) return;
        clearTimeout(restore);
        if (!lowered) setRatio((window.devicePixelRatio || 1) / 2);
        lowered = true;
    });
    map.on('moveend', () => {
        if (resizing) return;
        clearTimeout(restore);
        restore = setTimeout(() => {
            setRatio(null); // back to following devicePixelRatio
            lowered = false;
        }, 300);
    });
}

const mapLoaded = new Promise((resolve) => map.once('load', resolve));

/* Loads the region outlines the build copied (regions/index.json lists them). */
async function loadRegions() {
    let list;
    try {
        list = (await getJSON('regions/index.json')).files || [];
    } catch (e) {
        console.warn('no region outlines:', e.message);
        return;
    }
    const bySource = {
        'countries-110m.geojson': 'countries',
        'us-states-10m.geojson': 'states',
        'nyc_boroughs.geojson': 'boroughs',
        'nyc_taxi_zones.geojson': 'zones',
    };
    await mapLoaded;
    for (const f of list) {
        const src = bySource[f];
        // An absolute URL: the worker (a blob: URL) fetches it.
        if (src) map.getSource(src).setData(new URL(`regions/${f}`, location.href).href);
    }
}

/* ---- vehicles ---- */

const fleet = {
    n: 0,
    idText: '', // the ids one after another; id i is idText[idOff[i], idOff[i+1])
    idOff: new Uint32Array(1),
    lon: new Float64Array(0),
    lat: new Float64Array(0),
    counts: [0, 0, 0],
    bboxed: false,
    lastRefreshMs: 0,
    lastFetchMs: 0,
    lastParseMs: 0,
};
let selected = null; // {id, trip}

function pointRadius() {
    const z = map.getZoom();
    return z < 8 ? 1.5 : z < 11 ? 2.2 : z < 14 ? 3.2 : 4.5;
}

function vehicleId(i) {
    return fleet.idText.slice(fleet.idOff[i], fleet.idOff[i + 1]);
}

/* The index of vehicle id in the arrays, or -1. */
function vehicleIndex(id) {
    const {idText, idOff, n} = fleet;
    if (!id) return -1;
    for (let at = idText.indexOf(id); at >= 0; at = idText.indexOf(id, at + 1)) {
        let lo = 0, hi = n; // the first i with idOff[i] >= at
        while (lo < hi) {
            const mid = (lo + hi) >> 1;
            if (idOff[mid] < at) lo = mid + 1;
            else hi = mid;
        }
        if (lo < n && idOff[lo] === at && idOff[lo + 1] - at === id.length) return lo;
    }
    return -1;
}

function vehicleLngLat(id) {
    const i = vehicleIndex(id);
    return i < 0 ? null : [fleet.lon[i], fleet.lat[i]];
}

function showSelection() {
    points.setSelected(selected ? vehicleIndex(selected.id) : -1);
}

function viewBbox(pad) {
    const b = map.getBounds();
    const w = b.getWest(), e = b.getEast(), s = b.getSouth(), n = b.getNorth();
    const dx = (e - w) * pad, dy = (n - s) * pad;
    const f = (v) => v.toFixed(5);
    return [
        f(Math.max(-180, w - dx)), f(Math.max(-85, s - dy)),
        f(Math.min(180, e + dx)), f(Math.min(85, n + dy)),
    ].join(',');
}

/* The vehicle list comes from a worker (vehicles-worker.js), one request at a time. */
const LIST_TIMEOUT_MS = 30000;
let listWorker = null;
let listSeq = 0;
const listWaiting = new Map(); // seq -> {resolve, reject, timer}

function settle(seq) {
    const w = listWaiting.get(seq);
    if (w) {
        listWaiting.delete(seq);
        clearTimeout(w.timer);
    }
    return w;
}

/* A worker that failed to load or died is dropped with everything it was
 * asked, and the next request starts a new one: no promise is left hanging. */
function dropWorker(why) {
    if (listWorker) listWorker.terminate();
    listWorker = null;
    for (const seq of [...listWaiting.keys()]) settle(seq).reject(new Error(`vehicle list: ${why}`));
}

function startWorker() {
    const w = new Worker('vehicles-worker.js');
    w.onmessage = (msg) => {
        const d = msg.data || {};
        const waiting = settle(d.seq);
        if (!waiting) return;
        if (typeof d.error === 'string') waiting.reject(new HttpError(d.status, d.error || 'failed'));
        else waiting.resolve(d);
    };
    w.onerror = (e) => {
        e.preventDefault();
        dropWorker(e.message || 'the worker (vehicles-worker.js) failed to load or run');
    };
    w.onmessageerror = () => dropWorker('an answer the page could not read');
    return w;
}

function fetchVehicles(url) {
    if (!listWorker) listWorker = startWorker();
    const seq = ++listSeq;
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => dropWorker(`no answer in ${LIST_TIMEOUT_MS / 1000} s`), LIST_TIMEOUT_MS);
        listWaiting.set(seq, {resolve, reject, timer});
        listWorker.postMessage({seq, url, maxPoints: MAX_POINTS});
    });
}

/* Fetches the vehicles (all pages, up to MAX_POINTS) and redraws them. */
async function refreshVehicles() {
    const t0 = performance.now();
    const bboxed = map.getZoom() >= BBOX_ZOOM;
    const path = `/v1/vehicles?format=compact&limit=${PAGE_LIMIT}` + (bboxed ? `&bbox=${viewBbox(0.1)}` : '');
    const r = await fetchVehicles(new URL(path, location.href).href);
    Object.assign(fleet, {n: r.n, idText: r.idText, idOff: r.idOff, lon: r.lon, lat: r.lat, counts: r.counts, bboxed});
    points.setData(r.n, r.mx, r.my, r.status, selected ? vehicleIndex(selected.id) : -1);
    fleet.lastFetchMs = r.fetchMs;
    fleet.lastParseMs = r.parseMs;
    fleet.lastRefreshMs = performance.now() - t0;

    const counts = r.counts;
    $('vehicle-count').textContent = r.n.toLocaleString('en-US');
    $('vehicle-count').dataset.count = String(r.n);
    $('n-available').textContent = counts[0].toLocaleString('en-US');
    $('n-busy').textContent = counts[1].toLocaleString('en-US');
    $('n-offline').textContent = counts[2].toLocaleString('en-US');
    $('refresh-ms').textContent = fleet.lastRefreshMs.toFixed(0);
    $('scope').textContent = bboxed ? 'in view' : 'all';
}

/* The robust extent of the fleet: without the outer 0.5% on each side when
 * large, so a few far-off vehicles do not zoom the map out to the world. */
function fleetBounds() {
    if (fleet.n === 0) return null;
    const lons = fleet.lon.slice(0, fleet.n), lats = fleet.lat.slice(0, fleet.n);
    lons.sort();
    lats.sort();
    const cut = fleet.n > 200 ? Math.floor(fleet.n * 0.005) : 0;
    const hi = fleet.n - 1 - cut;
    let b = [[lons[cut], lats[cut]], [lons[hi], lats[hi]]];
    // A single vehicle (or a tight cluster): show a few hundred metres around it.
    const minSpan = 0.005;
    if (b[1][0] - b[0][0] < minSpan && b[1][1] - b[0][1] < minSpan) {
        const cx = (b[0][0] + b[1][0]) / 2, cy = (b[0][1] + b[1][1]) / 2;
        b = [[cx - minSpan, cy - minSpan], [cx + minSpan, cy + minSpan]];
    }
    return b;
}

function fitPadding() {
    const hud = $('hud').getBoundingClientRect();
    const w = map.getContainer().clientWidth;
    const left = hud.right + 20 < w * 0.6 ? hud.right + 20 : 30;
    return {top: 30, bottom: 30, left, right: 30};
}

let refreshTimer = null;
let refreshing = null;
let refreshAgain = false;

function scheduleRefresh(delay) {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(runRefresh, delay);
}

async function runRefresh() {
    if (refreshing) {
        refreshAgain = true;
        return refreshing;
    }
    const started = performance.now();
    if (document.hidden) { // a background tab asks for nothing
        scheduleRefresh(REFRESH_MS);
        return;
    }
    refreshing = (async () => {
        try {
            await refreshVehicles();
            setError('vehicles', null);
        } catch (e) {
            setError('vehicles', e);
        }
    })();
    await refreshing;
    refreshing = null;
    if (refreshAgain) {
        refreshAgain = false;
        scheduleRefresh(0);
    } else {
        scheduleRefresh(Math.max(200, REFRESH_MS - (performance.now() - started)));
    }
}

/* ---- clicks: hit test on the drawn points ---- */

map.on('click', (e) => {
    const i = points.nearest(e.point.x, e.point.y, Math.max(6, pointRadius() + 4));
    if (i >= 0) selectVehicle(vehicleId(i));
});

/* ---- the side panel ---- */

let selectSeq = 0;

function fmtDistance(m) {
    if (m == null) return '-';
    return m < 1000 ? `${m.toFixed(0)} m` : `${(m / 1000).toFixed(2)} km`;
}

function fmtDuration(ms) {
    if (ms == null) return '-';
    let s = Math.round(ms / 1000);
    const h = Math.floor(s / 3600);
    s -= h * 3600;
    const m = Math.floor(s / 60);
    s -= m * 60;
    return h ? `${h} h ${m} min` : m ? `${m} min ${s} s` : `${s} s`;
}

function fmtSpeed(v) {
    return v == null ? '-' : `${v.toFixed(1)} km/h`;
}

function setText(id, text) {
    $(id).textContent = text;
}

function clearTrip() {
    setText('trip-id', '');
    for (const f of ['trip-state', 'trip-distance', 'trip-duration', 'trip-idle', 'trip-maxspeed', 'trip-points']) {
        setText(f, '-');
    }
    map.getSource('trip')?.setData(emptyFC());
}

function showTrip(t) {
    setText('trip-id', t.id);
    setText('trip-state', t.state);
    setText('trip-distance', fmtDistance(t.distance_m));
    setText('trip-duration', fmtDuration(t.duration_ms));
    setText('trip-idle', fmtDuration(t.idle_ms));
    setText('trip-maxspeed', fmtSpeed(t.max_speed));
    setText('trip-points', t.points == null ? '-' : String(t.points) + (t.truncated ? ' (truncated)' : ''));
    const path = t.path && t.path.type === 'LineString' && t.path.coordinates.length >= 2 ? t.path : null;
    map.getSource('trip').setData(path
        ? {type: 'Feature', properties: {id: t.id}, geometry: path}
        : emptyFC());
}

/* Shows vehicle id and its current trip (or the given trip). */
async function selectVehicle(id, opts = {}) {
    const seq = ++selectSeq;
    const fresh = !selected || selected.id !== id;
    selected = {id, trip: opts.trip || null};
    $('panel').hidden = false;
    setText('vehicle-id', id);
    if (fresh && !opts.quiet) {
        setText('vehicle-info', 'loading...');
        clearTrip();
    }
    showSelection();
    try {
        const v = await getJSON(`/v1/vehicles/${encodeURIComponent(id)}`);
        if (seq !== selectSeq) return;
        const bits = [v.status];
        if (v.fleet) bits.push(`fleet ${v.fleet}`);
        if (v.speed != null) bits.push(fmtSpeed(v.speed));
        if (v.heading != null) bits.push(`heading ${v.heading.toFixed(0)}°`);
        if (v.ts) bits.push(new Date(v.ts).toLocaleTimeString('en-GB'));
        setText('vehicle-info', bits.join(' · '));
        const tid = opts.trip || v.trip;
        if (!tid) {
            selected.trip = null;
            clearTrip();
            setText('trip-state', 'no trip');
            setError('selection', null);
            return;
        }
        const t = await getJSON(`/v1/trips/${encodeURIComponent(tid)}?path=geojson`);
        if (seq !== selectSeq) return;
        selected.trip = t.id;
        selected.tripState = t.state;
        showTrip(t);
        setError('selection', null);
    } catch (e) {
        if (seq !== selectSeq) return;
        if (e instanceof HttpError && e.status === 404) {
            setText('vehicle-info', 'no longer known');
        } else {
            setError('selection', e);
        }
    }
}

function closePanel() {
    selectSeq++;
    selected = null;
    $('panel').hidden = true;
    clearTrip();
    showSelection();
}

$('panel-close').addEventListener('click', closePanel);
document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') closePanel();
});

// While a vehicle is selected, its trip (path, distance) is kept current.
setInterval(() => {
    if (selected && !document.hidden && (!selected.trip || selected.tripState === 'running')) {
        selectVehicle(selected.id, {quiet: true});
    }
}, 2000);

/* ---- supply and demand by area ---- */

// Geohash cell size in degrees (lon, lat) for 4..7 characters.
const CELL = {4: [0.3515625, 0.17578125], 5: [0.0439453125, 0.0439453125], 6: [0.010986328125, 0.0054931640625], 7: [0.001373291015625, 0.001373291015625]};

function areaLevel() {
    const b = map.getBounds();
    const w = Math.min(360, b.getEast() - b.getWest()), h = Math.min(170, b.getNorth() - b.getSouth());
    for (let level = 7; level > 4; level--) {
        const [cw, ch] = CELL[level];
        if ((w / cw) * (h / ch) <= 4000) return level;
    }
    return 4;
}

function heatColor(mode) {
    if (mode === 'gap') {
        return ['interpolate', ['linear'], ['get', 't'],
            -1, 'rgba(40,120,255,0.9)', -0.05, 'rgba(40,120,255,0.15)',
            0, 'rgba(0,0,0,0)',
            0.05, 'rgba(255,60,60,0.15)', 1, 'rgba(255,60,60,0.9)'];
    }
    const hot = mode === 'demand'
        ? ['rgba(255,200,0,0.10)', 'rgba(255,120,0,0.55)', 'rgba(255,40,40,0.9)']
        : ['rgba(0,200,150,0.10)', 'rgba(0,200,150,0.5)', 'rgba(120,255,200,0.9)'];
    return ['interpolate', ['linear'], ['get', 't'], 0, hot[0], 0.5, hot[1], 1, hot[2]];
}

let areasBusy = false;
let areasTimer = null;

async function refreshAreas() {
    clearTimeout(areasTimer);
    areasTimer = setTimeout(refreshAreas, AREAS_MS);
    const mode = $('heat-mode').value;
    if (mode === 'off' || areasBusy) return;
    areasBusy = true;
    try {
        const level = areaLevel();
        const fc = await getJSON(`/v1/areas?level=${level}&bbox=${viewBbox(0.05)}`);
        if ($('heat-mode').value !== mode) return;
        let max = 0;
        const feats = [];
        for (const f of fc.features || []) {
            const p = f.properties || {};
            const v = mode === 'supply' ? p.supply : mode === 'demand' ? p.demand : (p.demand || 0) - (p.supply || 0);
            if (!v) continue;
            max = Math.max(max, Math.abs(v));
            feats.push(f);
        }
        for (const f of feats) {
            const p = f.properties;
            const v = mode === 'supply' ? p.supply : mode === 'demand' ? p.demand : p.demand - p.supply;
            p.t = Math.sign(v) * Math.sqrt(Math.abs(v) / max);
        }
        map.getSource('areas').setData({type: 'FeatureCollection', features: feats});
        setText('heat-level', `${level} (${feats.length}${fc.truncated ? ', truncated' : ''})`);
        setError('areas', null);
    } catch (e) {
        setError('areas', e);
    } finally {
        areasBusy = false;
    }
}

$('heat-mode').addEventListener('change', () => {
    const mode = $('heat-mode').value;
    map.setLayoutProperty('areas-fill', 'visibility', mode === 'off' ? 'none' : 'visible');
    if (mode === 'off') {
        map.getSource('areas').setData(emptyFC());
        setText('heat-level', '-');
    } else {
        map.setPaintProperty('areas-fill', 'fill-color', heatColor(mode));
        map.getSource('areas').setData(emptyFC());
        refreshAreas();
    }
});

let moveTimer = null;
map.on('moveend', () => {
    clearTimeout(moveTimer);
    moveTimer = setTimeout(() => {
        if (map.getZoom() >= BBOX_ZOOM || fleet.bboxed) runRefresh();
        refreshAreas();
    }, 200);
});
map.on('zoom', () => points.setRadius(pointRadius()));

/* ---- live counters ---- */

const series = {t: [], ups: [], p50: [], p99: [], clients: [], http: [], sse: []};

function makePlot(el, title, lines) {
    const width = el.clientWidth || 280;
    const opts = {
        width,
        height: 64,
        legend: {show: false},
        cursor: {show: false},
        padding: [6, 4, 0, 0],
        scales: {x: {time: true}, y: {range: (u, lo, hi) => [0, hi > 0 ? hi * 1.15 : 1]}},
        axes: [
            {show: false},
            {size: 42, font: '10px system-ui, sans-serif', stroke: '#8fa3b8', ticks: {show: false},
                grid: {stroke: 'rgba(143,163,184,0.12)', width: 1}, values: (u, vals) => vals.map(shortNum)},
        ],
        series: [{}, ...lines.map(([label, color]) => ({label, stroke: color, width: 1.5, points: {show: false}}))],
    };
    const plot = new uPlot(opts, [[], ...lines.map(() => [])], el);
    const cap = document.createElement('div');
    cap.className = 'plot-title';
    cap.innerHTML = title;
    el.prepend(cap);
    return plot;
}

function shortNum(v) {
    if (v == null) return '';
    const a = Math.abs(v);
    return a >= 1e6 ? `${+(v / 1e6).toFixed(1)}M` : a >= 1e3 ? `${+(v / 1e3).toFixed(1)}k` : `${+v.toFixed(1)}`;
}

let plots = null;
function ensurePlots() {
    if (plots) return plots;
    plots = {
        ups: makePlot($('plot-ups'), 'updates / s', [['updates/s', '#4fc3f7']]),
        lat: makePlot($('plot-lat'), 'latency µs <i class="k p50"></i>p50 <i class="k p99"></i>p99',
            [['p50', '#8bc34a'], ['p99', '#ff7043']]),
        clients: makePlot($('plot-clients'), 'clients <i class="k resp"></i>resp <i class="k http"></i>http <i class="k sse"></i>sse',
            [['resp', '#ba68c8'], ['http', '#ffd54f'], ['sse', '#4dd0e1']]),
    };
    return plots;
}

let lastStatsAt = 0;

function onStats(s) {
    lastStatsAt = performance.now();
    const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
    const fmt = (v, d = 0) => (num(v) == null ? '-' : v.toLocaleString('en-US', {maximumFractionDigits: d}));
    setText('s-ups', fmt(s.updates_per_s));
    setText('s-p50', fmt(s.p50_us, 1));
    setText('s-p99', fmt(s.p99_us, 1));
    setText('s-clients', fmt(s.clients));
    $('s-clients').title = `resp ${fmt(s.clients)} · http ${fmt(s.http_clients)} · sse ${fmt(s.sse_clients)}`;
    setText('s-vehicles', fmt(s.vehicles));
    setText('s-trips', fmt(s.trips_running));

    // ts is 0 until the server's first one-second sample.
    const t = s.ts > 0 ? s.ts / 1000 : Date.now() / 1000;
    if (series.t.length && t <= series.t[series.t.length - 1]) return;
    series.t.push(t);
    series.ups.push(num(s.updates_per_s));
    series.p50.push(num(s.p50_us));
    series.p99.push(num(s.p99_us));
    series.clients.push(num(s.clients));
    series.http.push(num(s.http_clients));
    series.sse.push(num(s.sse_clients));
    if (series.t.length > HISTORY) for (const k in series) series[k].shift();
    const p = ensurePlots();
    p.ups.setData([series.t, series.ups]);
    p.lat.setData([series.t, series.p50, series.p99]);
    p.clients.setData([series.t, series.clients, series.http, series.sse]);
}

function addRecentTrip(kind, t) {
    if (!t || !t.id) return;
    const ol = $('recent-trips');
    const li = document.createElement('li');
    li.className = kind;
    const when = new Date(kind === 'ended' ? (t.end || t.last || Date.now()) : (t.start || Date.now()));
    const what = kind === 'ended'
        ? `ended ${t.state !== 'ended' ? `(${t.state}) ` : ''}${fmtDistance(t.distance_m)}, ${fmtDuration(t.duration_ms)}`
        : 'started';
    li.innerHTML = '<time></time> <a href="#"></a> <span class="v"></span> <span class="what"></span>';
    li.querySelector('time').textContent = when.toLocaleTimeString('en-GB');
    li.querySelector('a').textContent = t.id;
    li.querySelector('.v').textContent = t.vehicle || '';
    li.querySelector('.what').textContent = what;
    li.querySelector('a').addEventListener('click', (e) => {
        e.preventDefault();
        if (t.vehicle) selectVehicle(t.vehicle, {trip: t.id});
    });
    ol.prepend(li);
    while (ol.children.length > 12) ol.lastChild.remove();
}

function connectEvents() {
    const es = new EventSource('/v1/events?types=stats,trips');
    const conn = $('conn');
    es.onopen = () => {
        conn.textContent = 'live';
        conn.className = 'conn live';
    };
    es.onerror = () => {
        conn.textContent = es.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting';
        conn.className = 'conn down';
    };
    const parse = (fn) => (e) => {
        try {
            fn(JSON.parse(e.data));
        } catch (err) {
            console.warn('bad event', e.type, err);
        }
    };
    es.addEventListener('stats', parse(onStats));
    es.addEventListener('trip_started', parse((t) => addRecentTrip('started', t)));
    es.addEventListener('trip_ended', parse((t) => addRecentTrip('ended', t)));
    return es;
}

// While the stream is silent (connecting, or a proxy holding it), poll.
setInterval(async () => {
    if (performance.now() - lastStatsAt < 3000 || document.hidden) return;
    try {
        onStats(await getJSON('/v1/stats'));
        setError('stats', null);
    } catch (e) {
        setError('stats', e);
    }
}, 1000);

/* ---- start ---- */

async function start() {
    loadRegions();
    connectEvents();
    await mapLoaded;
    points.setRadius(pointRadius());
    ensurePlots();
    try {
        await refreshVehicles();
        setError('vehicles', null);
    } catch (e) {
        setError('vehicles', e);
    }
    const b = fleetBounds();
    map.fitBounds(b || NYC, {padding: fitPadding(), maxZoom: 15, duration: 0});
    await runRefresh(); // again, now with the fitted view's bbox when zoomed in
    refreshAreas();
}

const ready = start();

window.fleetdDashboard = {
    map,
    points,
    ready,
    vehicleCount: () => fleet.n,
    vehicleLngLat,
    vehicleScreenPosition(id) {
        const ll = vehicleLngLat(id);
        if (!ll) return null;
        const p = map.project(ll);
        const c = map.getContainer();
        if (p.x < 0 || p.y < 0 || p.x > c.clientWidth || p.y > c.clientHeight) return null;
        return [p.x, p.y];
    },
    stats: () => ({
        vehicles: fleet.n,
        counts: fleet.counts.slice(),
        lastRefreshMs: fleet.lastRefreshMs,
        lastFetchMs: fleet.lastFetchMs,
        lastParseMs: fleet.lastParseMs,
        lastDrawMs: points.lastDrawMs,
    }),
    selectVehicle,
};
