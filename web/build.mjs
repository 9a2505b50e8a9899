// build.mjs - `npm run build`: bundles src/ into ../build/web (index.html,
// app.js, app.css, vehicles-worker.js) with esbuild and copies the region GeoJSON files from
// ../shared/data/regions when present, listing them in regions/index.json
// (the page asks only for what is listed).
import {build} from 'esbuild';
import {chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {dirname, join, resolve} from 'node:path';
import {fileURLToPath} from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(here, process.env.FLEETD_WEB_OUT || '../build/web');
const regionsSrc = resolve(here, process.env.FLEETD_REGIONS || '../../shared/data/regions');
const REGIONS = ['nyc_taxi_zones.geojson', 'nyc_boroughs.geojson', 'countries-110m.geojson', 'us-states-10m.geojson'];

rmSync(out, {recursive: true, force: true});
mkdirSync(join(out, 'regions'), {recursive: true});

const result = await build({
    entryPoints: {app: join(here, 'src/main.js'), 'vehicles-worker': join(here, 'src/vehicles-worker.js')},
    outdir: out,
    bundle: true,
    minify: true,
    format: 'iife',
    target: ['chrome100', 'firefox100', 'safari15'],
    loader: {'.mjs': 'js'},
    // The maplibre worker goes into app.js as text (started from a blob: URL).
    plugins: [{
        name: 'worker-as-text',
        setup(b) {
            b.onLoad({filter: /maplibre-gl-worker\.mjs$/}, async (args) => ({
                contents: readFileSync(args.path, 'utf8'),
                loader: 'text',
            }));
        },
    }],
    legalComments: 'eof',
    metafile: true,
    logLevel: 'warning',
});
copyFileSync(join(here, 'src/index.html'), join(out, 'index.html'));

const copied = [];
for (const f of REGIONS) {
    const src = join(regionsSrc, f);
    if (existsSync(src)) {
        copyFileSync(src, join(out, 'regions', f));
        chmodSync(join(out, 'regions', f), 0o644); // shared/ is read-only
        copied.push(f);
    }
}
writeFileSync(join(out, 'regions/index.json'), JSON.stringify({files: copied}) + '\n');

for (const [f, o] of Object.entries(result.metafile.outputs)) {
    console.log(`web: ${f.replace(/^.*\/build\//, 'build/')} ${(o.bytes / 1024).toFixed(0)} KiB`);
}
console.log(`web: regions: ${copied.length ? copied.join(', ') : 'none (no ' + regionsSrc + ')'}`);
