/*
 * main.js - the fleetd live dashboard.
 *
 * Why shaped so:
 * - maplibre-gl draws the base with no tile server: a plain background and
 *   the GeoJSON outlines shipped in regions/ (countries, US states, NYC
 *   boroughs and taxi zones), listed by regions/index.json which the build
 *   writes, so a tree without the files asks for none of them. A raster tile
 *   URL may be given with ?tiles=https://host/{z}/{x}/{y}.png.
 * - Vehicles are one deck.gl ScatterplotLayer fed with typed arrays (binary
 *   attributes: Float64 positions, Uint8 colours), rebuilt from
 *   GET /v1/vehicles?format=compact once a second: no per-vehicle objects,
 *   so 100,000 points cost one JSON parse and two array fills per refresh.
 *   Zoomed in, the request carries the viewport's bbox.
 * - A click is hit-tested here, not by deck.gl's picking pass: a scan of the
 *   positions inside a few pixels' box, then the nearest on screen. No
 *   picking render on every mouse move, and the answer is deterministic.
 * - Supply and demand come from GET /v1/areas as GeoJSON cells, drawn as a
 *   maplibre fill under the vehicles; the geohash level is the finest whose
 *   cells in the viewport stay under a few thousand.
 * - Counters and their uPlot plots are fed by the SSE stream
 *   /v1/events?types=stats,trips (GET /v1/stats is polled only while the
 *   stream is silent); trip_started / trip_ended feed "recent trips".
 * - For tests: window.fleetdDashboard = {map, vehicleCount(),
 *   vehicleScreenPosition(id) -> [x, y] in CSS pixels relative to the map
 *   container (null when unknown or out of view), ready: Promise}.
 */
import * as maplibregl from 'maplibre-gl';
import workerSource from 'maplibre-gl/dist/maplibre-gl-worker.mjs';
import {MapboxOverlay} from '@deck.gl/mapbox';
import {ScatterplotLayer} from '@deck.gl/layers';
import uPlot from 'uplot';

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
const HISTORY = 120; // seconds of counters kept in the plots
const STATUS = ['available', 'busy', 'offline'];
const COLORS = [[46, 204, 113, 230], [255, 140, 40, 230], [130, 140, 155, 200]];
const UNKNOWN_COLOR = [200, 80, 220, 230];

const $ = (id) => document.getElementById(id);

function clampInt(s, lo, hi, dflt) {
    const v = parseInt(s ?? '', 10);
    return Number.isFinite(v) ? Math.min(hi, Math.max(lo, v)) : dflt;
}

/* ---- HTTP ---- */

class HttpError extends Error {
    constructor(status, detail) {
        super(detail);
        this.status = status;
    }
}

async function getJSON(path) {
    const res = await fetch(path, {headers: {Accept: 'application/json'}});
    if (!res.ok) {
        let detail = `${res.status} ${res.statusText}`;
        try {
            const p = await res.json();
            if (p && p.detail) detail = `${res.status}: ${p.detail}`;
        } catch { /* not a problem document */ }
        throw new HttpError(res.status, `${path}: ${detail}`);
    }
    return res.json();
}

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
        boroughs: {type: 'geojson', data: emptyFC()},
        zones: {type: 'geojson', data: emptyFC()},
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
});
map.touchZoomRotate.disableRotation();
map.addControl(new maplibregl.NavigationControl({showCompass: false}), 'bottom-right');
map.addControl(new maplibregl.ScaleControl({unit: 'metric'}), 'bottom-right');

const overlay = new MapboxOverlay({interleaved: false, layers: []});
map.addControl(overlay);

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
    ids: [],
    trips: [],
    pos: new Float64Array(0), // lon, lat pairs
    colors: new Uint8Array(0), // RGBA per vehicle
    data: {length: 0, attributes: {}}, // the layer's binary data of pos and colors
    status: new Uint8Array(0), // index into STATUS, 3 = unknown
    counts: [0, 0, 0],
    bboxed: false,
    lastRefreshMs: 0,
    lastFetchMs: 0,
    lastParseMs: 0,
};
let selected = null; // {id, trip}
let drawnRadius = 0; // the dot radius the layer has

function pointRadius() {
    const z = map.getZoom();
    return z < 8 ? 1.5 : z < 11 ? 2.2 : z < 14 ? 3.2 : 4.5;
}

function renderLayers() {
    const layers = [];
    // fleet.data is a new object only when refreshVehicles rebuilt the
    // arrays: deck.gl re-uploads the attributes when data changes identity.
    layers.push(new ScatterplotLayer({
        id: 'vehicles',
        data: fleet.data,
        radiusUnits: 'pixels',
        getRadius: 1,
        radiusScale: (drawnRadius = pointRadius()),
        radiusMinPixels: 1,
        stroked: false,
        filled: true,
        pickable: false,
    }));
    const sel = selected && vehicleLngLat(selected.id);
    if (sel) {
        layers.push(new ScatterplotLayer({
            id: 'selected',
            data: [sel],
            getPosition: (d) => d,
            radiusUnits: 'pixels',
            getRadius: 9,
            stroked: true,
            filled: false,
            getLineColor: [255, 255, 255, 255],
            lineWidthUnits: 'pixels',
            getLineWidth: 2,
            updateTriggers: {getPosition: sel},
        }));
    }
    overlay.setProps({layers});
}

function vehicleIndex(id) {
    return fleet.ids.indexOf(id);
}

function vehicleLngLat(id) {
    const i = vehicleIndex(id);
    return i < 0 ? null : [fleet.pos[2 * i], fleet.pos[2 * i + 1]];
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

/* Fetches the vehicles (all pages, up to MAX_POINTS) and rebuilds the arrays. */
async function refreshVehicles() {
    const t0 = performance.now();
    const bboxed = map.getZoom() >= BBOX_ZOOM;
    const base = `/v1/vehicles?format=compact&limit=${PAGE_LIMIT}` + (bboxed ? `&bbox=${viewBbox(0.1)}` : '');
    const pages = [];
    let total = 0;
    let cursor = null;
    do {
        const body = await getJSON(cursor ? `${base}&cursor=${encodeURIComponent(cursor)}` : base);
        pages.push(body);
        total += body.vehicles.length;
        cursor = body.next_cursor;
    } while (cursor && total < MAX_POINTS);
    const t1 = performance.now();

    const pos = new Float64Array(2 * total);
    const colors = new Uint8Array(4 * total);
    const status = new Uint8Array(total);
    const ids = new Array(total);
    const trips = new Array(total);
    const counts = [0, 0, 0];
    let k = 0;
    for (const page of pages) {
        const f = page.fields || ['id', 'lon', 'lat', 'status', 'heading', 'trip'];
        const iId = f.indexOf('id'), iLon = f.indexOf('lon'), iLat = f.indexOf('lat');
        const iSt = f.indexOf('status'), iTrip = f.indexOf('trip');
        for (const row of page.vehicles) {
            ids[k] = row[iId];
            trips[k] = iTrip >= 0 ? row[iTrip] : null;
            pos[2 * k] = row[iLon];
            pos[2 * k + 1] = row[iLat];
            let s = STATUS.indexOf(row[iSt]);
            if (s < 0) s = 3;
            else counts[s]++;
            status[k] = s;
            colors.set(s < 3 ? COLORS[s] : UNKNOWN_COLOR, 4 * k);
            k++;
        }
    }
    const data = {
        length: total,
        attributes: {
            getPosition: {value: pos, size: 2},
            getFillColor: {value: colors, size: 4, normalized: true},
        },
    };
    Object.assign(fleet, {n: total, ids, trips, pos, colors, status, counts, bboxed, data});
    renderLayers();
    const t2 = performance.now();
    fleet.lastFetchMs = t1 - t0;
    fleet.lastParseMs = t2 - t1;
    fleet.lastRefreshMs = t2 - t0;

    $('vehicle-count').textContent = total.toLocaleString('en-US');
    $('vehicle-count').dataset.count = String(total);
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
    const lons = new Float64Array(fleet.n), lats = new Float64Array(fleet.n);
    for (let i = 0; i < fleet.n; i++) {
        lons[i] = fleet.pos[2 * i];
        lats[i] = fleet.pos[2 * i + 1];
    }
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

/* ---- clicks: hit test on the arrays ---- */

function nearestVehicle(point, radiusPx) {
    if (fleet.n === 0) return null;
    const a = map.unproject([point.x - radiusPx, point.y + radiusPx]);
    const b = map.unproject([point.x + radiusPx, point.y - radiusPx]);
    const minLon = Math.min(a.lng, b.lng), maxLon = Math.max(a.lng, b.lng);
    const minLat = Math.min(a.lat, b.lat), maxLat = Math.max(a.lat, b.lat);
    let best = -1, bestD = radiusPx * radiusPx;
    const pos = fleet.pos;
    for (let i = 0; i < fleet.n; i++) {
        const lon = pos[2 * i], lat = pos[2 * i + 1];
        if (lon < minLon || lon > maxLon || lat < minLat || lat > maxLat) continue;
        const p = map.project([lon, lat]);
        const d = (p.x - point.x) ** 2 + (p.y - point.y) ** 2;
        if (d <= bestD) {
            bestD = d;
            best = i;
        }
    }
    return best < 0 ? null : fleet.ids[best];
}

map.on('click', (e) => {
    const id = nearestVehicle(e.point, Math.max(6, pointRadius() + 4));
    if (id !== null) selectVehicle(id);
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
    renderLayers();
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
    renderLayers();
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
map.on('zoom', () => {
    if (fleet.n && pointRadius() !== drawnRadius) renderLayers();
});

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
    overlay,
    ready,
    vehicleCount: () => fleet.n,
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
    }),
    selectVehicle,
};
