/*
 * points.js - the vehicles, drawn as pixels on a 2D canvas over the map.
 *
 * Why not WebGL: the first dashboard drew them with deck.gl's
 * ScatterplotLayer. In a browser without a GPU (headless chromium, many
 * remote desktops and VMs: WebGL runs in SwiftShader on the CPU) one frame
 * of 100,000 points took ~1.1 s, so panning ran at 1 fps. Writing the
 * pixels ourselves costs a few milliseconds on any machine, GPU or not.
 *
 * Shape: positions arrive as Web Mercator x, y in [0, 1] (the worker
 * computes them once per refresh). With no pitch (the map allows none),
 * screen position is an affine function of them, taken each frame from
 * three map.project calls; a frame is then a multiply-add per coordinate
 * and a stamp of a few pixel stores per point into one Uint32Array, put on
 * the canvas as one ImageData. No per-point object, call or path.
 *
 * Ownership: setData keeps references to the arrays it is given; the
 * caller must not change them afterwards (the worker hands over new ones).
 */
import {MercatorCoordinate} from 'maplibre-gl';

// A step in Mercator units over which the affine map is sampled (exact for
// any step when there is no pitch; large enough to keep rounding away).
const PROBE = 1 / 1024;

export class PointLayer {
    /* palette: [[r, g, b], ...] indexed by the status byte of each point. */
    constructor(map, palette) {
        this.map = map;
        this.canvas = document.createElement('canvas');
        this.canvas.className = 'points';
        const container = map.getContainer();
        container.insertBefore(this.canvas, container.querySelector('.maplibregl-control-container'));
        this.ctx = this.canvas.getContext('2d');
        // Little-endian RGBA as one 32-bit word, opaque.
        this.palette = Uint32Array.from(palette, ([r, g, b]) => ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0);
        this.n = 0;
        this.mx = new Float64Array(0);
        this.my = new Float64Array(0);
        this.status = new Uint8Array(0);
        this.radius = 2;
        this.selected = -1;
        this.image = null;
        this.pixels = null;
        this.stamps = new Map();
        this.lastDrawMs = 0;
        map.on('render', () => this.draw());
        map.on('resize', () => this.draw());
    }

    /* selected: the index to ring in the new arrays, or -1. */
    setData(n, mx, my, status, selected) {
        this.n = n;
        this.mx = mx;
        this.my = my;
        this.status = status;
        this.selected = selected;
        this.draw();
    }

    setRadius(r) {
        if (r === this.radius) return;
        this.radius = r;
        this.draw();
    }

    setSelected(i) {
        if (i === this.selected) return;
        this.selected = i;
        this.draw();
    }

    /* The affine map from Mercator to CSS pixels: [a, b, c, d, e, f] with
     * x = a*mx + b*my + c, y = d*mx + e*my + f. */
    transform() {
        const map = this.map;
        // Probed around the centre's longitude on the equator: project()
        // clamps latitudes, which near the poles would skew the scale.
        const m = MercatorCoordinate.fromLngLat([map.getCenter().lng, 0]);
        const p0 = map.project(new MercatorCoordinate(m.x, m.y).toLngLat());
        const px = map.project(new MercatorCoordinate(m.x + PROBE, m.y).toLngLat());
        const py = map.project(new MercatorCoordinate(m.x, m.y + PROBE).toLngLat());
        const a = (px.x - p0.x) / PROBE, b = (py.x - p0.x) / PROBE;
        const d = (px.y - p0.y) / PROBE, e = (py.y - p0.y) / PROBE;
        return [a, b, p0.x - a * m.x - b * m.y, d, e, p0.y - d * m.x - e * m.y];
    }

    /* Pixel offsets of a disc of radius r on a row stride w. */
    stamp(r, w) {
        const key = `${r},${w}`;
        let s = this.stamps.get(key);
        if (s) return s;
        const R = Math.ceil(r);
        const lim = (r + 0.25) * (r + 0.25);
        const dx = [], dy = [];
        for (let y = -R; y <= R; y++) {
            for (let x = -R; x <= R; x++) {
                if (x * x + y * y <= lim) {
                    dx.push(x);
                    dy.push(y);
                }
            }
        }
        s = {R, dx: Int32Array.from(dx), dy: Int32Array.from(dy), off: Int32Array.from(dx, (x, i) => dy[i] * w + x)};
        if (this.stamps.size > 16) this.stamps.clear();
        this.stamps.set(key, s);
        return s;
    }

    /* Sizes the canvas to its box in device pixels (at most 2 per CSS pixel). */
    fit() {
        const c = this.map.getContainer();
        const dpr = Math.min(2, window.devicePixelRatio || 1);
        const w = Math.max(1, Math.round(c.clientWidth * dpr)), h = Math.max(1, Math.round(c.clientHeight * dpr));
        if (this.canvas.width !== w || this.canvas.height !== h || !this.image) {
            this.canvas.width = w;
            this.canvas.height = h;
            this.canvas.style.width = `${c.clientWidth}px`;
            this.canvas.style.height = `${c.clientHeight}px`;
            this.image = this.ctx.createImageData(w, h);
            this.pixels = new Uint32Array(this.image.data.buffer);
        }
        return dpr;
    }

    draw() {
        const t0 = performance.now();
        const dpr = this.fit();
        const W = this.canvas.width, H = this.canvas.height;
        const px = this.pixels;
        px.fill(0);
        const [a, b, c, d, e, f] = this.transform().map((v) => v * dpr);
        const st = this.stamp(Math.max(1, this.radius * dpr), W);
        // The world repeats sideways; draw each copy that reaches the view.
        for (let k = -2; k <= 2; k++) {
            const x0 = a * k + c, x1 = a * (k + 1) + c;
            if (Math.max(x0, x1) < -st.R || Math.min(x0, x1) > W + st.R) continue;
            this.drawCopy(a, b, a * k + c, d, e, d * k + f, st, W, H);
        }
        this.ctx.putImageData(this.image, 0, 0);
        if (this.selected >= 0 && this.selected < this.n) this.drawRing(a, b, c, d, e, f);
        this.lastDrawMs = performance.now() - t0;
    }

    drawCopy(a, b, c, d, e, f, st, W, H) {
        const {mx, my, status, palette} = this;
        const px = this.pixels, off = st.off, R = st.R, ns = off.length;
        const n = this.n;
        for (let i = 0; i < n; i++) {
            const x = Math.round(a * mx[i] + b * my[i] + c);
            const y = Math.round(d * mx[i] + e * my[i] + f);
            if (x < -R || y < -R || x >= W + R || y >= H + R) continue;
            const color = palette[status[i]];
            if (x >= R && y >= R && x < W - R && y < H - R) {
                const base = y * W + x;
                for (let j = 0; j < ns; j++) px[base + off[j]] = color;
            } else {
                for (let j = 0; j < ns; j++) { // at the edge: clip each pixel
                    const xx = x + st.dx[j], yy = y + st.dy[j];
                    if (xx >= 0 && yy >= 0 && xx < W && yy < H) px[yy * W + xx] = color;
                }
            }
        }
    }

    drawRing(a, b, c, d, e, f) {
        const i = this.selected, ctx = this.ctx;
        const dpr = this.canvas.width / Math.max(1, this.map.getContainer().clientWidth);
        ctx.beginPath();
        ctx.arc(a * this.mx[i] + b * this.my[i] + c, d * this.mx[i] + e * this.my[i] + f, 9 * dpr, 0, 2 * Math.PI);
        ctx.lineWidth = 2 * dpr;
        ctx.strokeStyle = '#ffffff';
        ctx.stroke();
    }

    /* The index of the point nearest CSS pixel (x, y) within radius, or -1. */
    nearest(x, y, radius) {
        const [a, b, c, d, e, f] = this.transform();
        const {mx, my, n} = this;
        let best = -1, bestD = radius * radius;
        for (let k = -2; k <= 2; k++) {
            const ck = a * k + c, fk = d * k + f;
            for (let i = 0; i < n; i++) {
                const dx = a * mx[i] + b * my[i] + ck - x;
                if (dx > radius || dx < -radius) continue;
                const dy = d * mx[i] + e * my[i] + fk - y;
                const dd = dx * dx + dy * dy;
                if (dd <= bestD) {
                    bestD = dd;
                    best = i;
                }
            }
        }
        return best;
    }

    /* The colour on the canvas at CSS pixel (x, y) as [r, g, b, a], read
     * back from the canvas itself (for tests); null outside it. */
    pixelAt(x, y) {
        const dpr = this.canvas.width / Math.max(1, this.map.getContainer().clientWidth);
        const px = Math.floor(x * dpr), py = Math.floor(y * dpr);
        if (px < 0 || py < 0 || px >= this.canvas.width || py >= this.canvas.height) return null;
        return Array.from(this.ctx.getImageData(px, py, 1, 1).data);
    }
}
