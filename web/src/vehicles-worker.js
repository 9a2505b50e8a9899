/*
 * vehicles-worker.js - fetches the vehicle list for the dashboard off the
 * page's thread.
 *
 * Why a worker: at 100,000 vehicles the compact list is ~5 MB of JSON, and
 * parsing it on the page's thread stalled a frame for ~100 ms every refresh.
 * Here it is fetched (all pages, up to a cap), parsed and turned into typed
 * arrays, which are handed over (transferred, not copied) with the ids as
 * one string and offsets into it: one copy, no 100,000 small strings for
 * the page to clone.
 *
 * Message in:  {seq, url, maxPoints} (url: the first page, absolute).
 * Message out: {seq, n, lon, lat, mx, my, status, counts, idText, idOff, fetchMs, parseMs}
 *              or {seq, error, status} (status: the HTTP status, 0 for a network error).
 * status bytes index STATUS below; 3 = any other status string.
 */
import {getJSON} from './http.js';

const STATUS = ['available', 'busy', 'offline'];

function mercatorY(lat) {
    const s = Math.sin((lat * Math.PI) / 180);
    return 0.5 - (0.25 * Math.log((1 + s) / (1 - s))) / Math.PI;
}

function toArrays(pages, total) {
    const lon = new Float64Array(total), lat = new Float64Array(total);
    const mx = new Float64Array(total), my = new Float64Array(total);
    const status = new Uint8Array(total);
    const idOff = new Uint32Array(total + 1);
    const ids = new Array(total);
    const counts = [0, 0, 0];
    let k = 0, chars = 0;
    for (const page of pages) {
        const f = page.fields || ['id', 'lon', 'lat', 'status', 'heading', 'trip'];
        const iId = f.indexOf('id'), iLon = f.indexOf('lon'), iLat = f.indexOf('lat'), iSt = f.indexOf('status');
        for (const row of page.vehicles) {
            if (k === total) break;
            const id = String(row[iId]);
            ids[k] = id;
            idOff[k] = chars;
            chars += id.length;
            lon[k] = row[iLon];
            lat[k] = row[iLat];
            mx[k] = (row[iLon] + 180) / 360;
            my[k] = mercatorY(row[iLat]);
            let s = STATUS.indexOf(row[iSt]);
            if (s < 0) s = 3;
            else counts[s]++;
            status[k] = s;
            k++;
        }
    }
    idOff[k] = chars;
    return {n: k, lon, lat, mx, my, status, counts, idText: ids.join(''), idOff};
}

self.onmessage = async (msg) => {
    const {seq, url, maxPoints} = msg.data;
    try {
        const t0 = performance.now();
        const pages = [];
        let total = 0;
        let cursor = null;
        do {
            const body = await getJSON(cursor ? `${url}&cursor=${encodeURIComponent(cursor)}` : url);
            pages.push(body);
            total += body.vehicles.length;
            cursor = body.next_cursor;
        } while (cursor && total < maxPoints);
        const t1 = performance.now();
        const out = toArrays(pages, Math.min(total, maxPoints));
        const t2 = performance.now();
        self.postMessage({seq, ...out, fetchMs: t1 - t0, parseMs: t2 - t1},
            [out.lon.buffer, out.lat.buffer, out.mx.buffer, out.my.buffer, out.status.buffer, out.idOff.buffer]);
    } catch (e) {
        self.postMessage({seq, error: String(e && e.message ? e.message : e), status: (e && e.status) || 0});
    }
};
