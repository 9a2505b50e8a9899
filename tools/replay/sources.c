/*
 * sources.c - reads the four real data sets of ../shared/data into tracks
 * (see its README.md for the files' origin and columns).
 *
 * Why this shape: each file has one fixed layout, so each gets a small
 * loader that turns its records into timed points or taxi trips, and
 * track.c does the rest. Records a loader cannot read (a missing
 * coordinate, a bad time) are skipped, never fatal: the data is real and
 * has holes. How a data set becomes tracks:
 *  - NYC: one driver's month of trips is one looping track (a copy of
 *    the cab is that driver at another moment of the month).
 *  - Chicago: 14,000 trips of many cabs over four years; only the time of
 *    day is kept (timestamps are rounded to 15 minutes anyway), and the
 *    trips, sorted by it, are dealt round-robin into cab-days of about
 *    TRIPS_PER_CAB_DAY trips, each a looping day.
 *  - AIS: one track per vessel (MMSI) over the hour, with its SOG/COG.
 *  - Munich: the one car trace.
 * The CSV reader understands quoted fields but needs none: these files
 * have no quotes or embedded commas.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay.h"

#define TRIPS_PER_CAB_DAY 20
#define DAY_S 86400.0
#define MAX_FIELDS 32
#define KNOT_KMH 1.852
#define SOG_UNKNOWN 102.3       /* AIS: speed over ground not available */
#define MAX_VESSEL_KMH 100.0    /* faster moves are position glitches */
#define MAX_CAR_KMH 180.0       /* (the car trace has one: 470 m in 1 s) */

const fl_rp_source fl_rp_source_defaults[FL_RP_SOURCES] = {
    {"nyc", "nyc-taxi", "nyc-", "trips/nyc_taxi_one_driver_2013-01.csv", 40,
     300.0, NULL, 0, 0},
    {"chicago", "chicago-taxi", "chi-", "trips/chicago_taxi_2013-2016.csv", 40,
     300.0, NULL, 0, 0},
    {"ais", "ais", "ais-", "tracks/ais_ny_harbor_2020-06-30_first_hour.csv", 19,
     150.0, NULL, 0, 0},
    {"munich", "munich", "muc-", "tracks/car_munich_2014-09-10_1hz.json", 1,
     300.0, NULL, 0, 0},
};

/* ---- small parsers ---- */

/* Splits a CSV line in place; returns the number of fields. */
static int split_csv(char *line, char **f, int max)
{
    int n = 0;
    char *p = line;
    line[strcspn(line, "\r\n")] = '\0';
    for (;;) {
        if (n == max) return n;
        int quoted = *p == '"';
        f[n++] = p + quoted;
        char *end = quoted ? strchr(p + 1, '"') : strchr(p, ',');
        if (quoted && end) {
            *end = '\0';
            end = strchr(end + 1, ',');
        } else if (end) {
            *end = '\0';
        }
        if (!end) return n;
        p = end + 1;
    }
}

static int parse_num(const char *s, double *out)
{
    char *end;
    if (!*s) return -1;
    errno = 0;
    *out = strtod(s, &end);
    return *end || errno || !isfinite(*out) ? -1 : 0;
}

/* Days from 1970-01-01 to a proleptic Gregorian date (Hinnant's
 * days_from_civil), so times parse without the TZ-dependent mktime. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* "YYYY-MM-DD HH:MM:SS" or with a 'T'; a trailing zone is ignored (a
 * track only needs times relative to its own start). */
static int parse_time(const char *s, double *out)
{
    int y, mo, d, h, mi, sec;
    char sep;
    if (sscanf(s, "%4d-%2d-%2d%c%2d:%2d:%2d", &y, &mo, &d, &sep, &h, &mi,
               &sec) != 7)
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    *out = (double)(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec);
    return 0;
}

static int coords_ok(double lon, double lat)
{
    return lon >= -180 && lon <= 180 && lat >= -85 && lat <= 85 &&
           (lon != 0 || lat != 0);
}

/* Grows *arr (of `size`-byte items) to hold at least n + 1 items. */
static int grow(void *arr, size_t *cap, size_t n, size_t size)
{
    void **p = arr;
    if (n < *cap) return 0;
    size_t c = *cap ? *cap * 2 : 256;
    void *q = realloc(*p, c * size);
    if (!q) return -ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

static int add_track(fl_rp_source *s, size_t *cap, fl_rp_track *tr)
{
    int rc = grow(&s->tracks, cap, s->ntracks, sizeof(*s->tracks));
    if (rc) return rc;
    s->tracks[s->ntracks++] = *tr;
    if (tr->max_kmh > s->max_kmh) s->max_kmh = tr->max_kmh;
    return 0;
}

/* ---- taxi trips ---- */

typedef struct trip_list {
    fl_rp_taxi_trip *v;
    size_t n, cap;
} trip_list;

static int trip_push(trip_list *l, const fl_rp_taxi_trip *t)
{
    int rc = grow(&l->v, &l->cap, l->n, sizeof(*l->v));
    if (rc) return rc;
    l->v[l->n++] = *t;
    return 0;
}

/* NYC, no header: medallion,hack,vendor,rate,flag,pickup_dt,dropoff_dt,
 * passengers,secs,miles,pickup_lon,pickup_lat,dropoff_lon,dropoff_lat */
static int nyc_row(char *line, fl_rp_taxi_trip *t)
{
    char *f[MAX_FIELDS];
    if (split_csv(line, f, MAX_FIELDS) < 14) return -1;
    if (parse_time(f[5], &t->t0) || parse_time(f[6], &t->t1) ||
        parse_num(f[10], &t->lon0) || parse_num(f[11], &t->lat0) ||
        parse_num(f[12], &t->lon1) || parse_num(f[13], &t->lat1))
        return -1;
    return coords_ok(t->lon0, t->lat0) && coords_ok(t->lon1, t->lat1) ? 0 : -1;
}

/* The driver's month becomes one loop: times from the first day's
 * midnight, the period the whole days the data spans. */
static int nyc_track(fl_rp_source *s, trip_list *l)
{
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < l->n; i++) {
        lo = fmin(lo, l->v[i].t0);
        hi = fmax(hi, l->v[i].t1);
    }
    double base = floor(lo / DAY_S) * DAY_S;
    double period = ceil((hi - base) / DAY_S) * DAY_S;
    for (size_t i = 0; i < l->n; i++) {
        l->v[i].t0 -= base;
        l->v[i].t1 -= base;
    }
    fl_rp_track tr = {0};
    size_t cap = 0;
    int rc = fl_rp_track_taxi(&tr, l->v, l->n, period);
    if (!rc) rc = add_track(s, &cap, &tr);
    if (rc) fl_rp_track_free(&tr);
    return rc;
}

static int col_index(char **f, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(f[i], name) == 0) return i;
    return -1;
}

enum { CHI_TS, CHI_SECS, CHI_PLAT, CHI_PLON, CHI_DLAT, CHI_DLON, CHI_NCOLS };
static const char *const chi_names[CHI_NCOLS] = {
    "trip_start_timestamp", "trip_seconds",   "pickup_latitude",
    "pickup_longitude",     "dropoff_latitude", "dropoff_longitude"};

static int chi_header(char *line, int *col)
{
    char *f[MAX_FIELDS];
    int n = split_csv(line, f, MAX_FIELDS);
    for (int i = 0; i < CHI_NCOLS; i++)
        if ((col[i] = col_index(f, n, chi_names[i])) < 0) return -1;
    return 0;
}

/* Rows lacking coordinates or a duration are skipped. */
static int chi_row(char *line, const int *col, fl_rp_taxi_trip *t)
{
    char *f[MAX_FIELDS];
    int n = split_csv(line, f, MAX_FIELDS);
    double v[CHI_NCOLS];
    for (int i = 0; i < CHI_NCOLS; i++)
        if (col[i] >= n || parse_num(f[col[i]], &v[i])) return -1;
    t->t0 = fmod(v[CHI_TS], DAY_S);
    t->t1 = t->t0 + v[CHI_SECS];
    t->lon0 = v[CHI_PLON];
    t->lat0 = v[CHI_PLAT];
    t->lon1 = v[CHI_DLON];
    t->lat1 = v[CHI_DLAT];
    return coords_ok(t->lon0, t->lat0) && coords_ok(t->lon1, t->lat1) ? 0 : -1;
}

static int cmp_t0(const void *a, const void *b)
{
    double x = ((const fl_rp_taxi_trip *)a)->t0, y = ((const fl_rp_taxi_trip *)b)->t0;
    return (x > y) - (x < y);
}

/* Deals the trips, sorted by time of day, round-robin into cab-days. */
static int chi_tracks(fl_rp_source *s, trip_list *l)
{
    qsort(l->v, l->n, sizeof(*l->v), cmp_t0);
    size_t days = l->n / TRIPS_PER_CAB_DAY ? l->n / TRIPS_PER_CAB_DAY : 1;
    fl_rp_taxi_trip *day = malloc(sizeof(*day) * (l->n / days + 1));
    if (!day) return -ENOMEM;
    size_t cap = 0;
    int rc = 0;
    for (size_t g = 0; g < days && !rc; g++) {
        size_t k = 0;
        for (size_t i = g; i < l->n; i += days) day[k++] = l->v[i];
        fl_rp_track tr = {0};
        rc = fl_rp_track_taxi(&tr, day, k, DAY_S);
        if (!rc) rc = add_track(s, &cap, &tr);
        if (rc) fl_rp_track_free(&tr);
        if (rc == -ENODATA) rc = 0;
    }
    free(day);
    return rc;
}

/* ---- AIS ---- */

typedef struct ais_row {
    long long mmsi;
    double t, lon, lat, sog, cog;
} ais_row;

enum { AIS_TIME, AIS_LON, AIS_LAT, AIS_MMSI, AIS_SOG, AIS_COG, AIS_NCOLS };
static const char *const ais_names[AIS_NCOLS] = {"BaseDateTime", "LON", "LAT",
                                                 "MMSI", "SOG", "COG"};

static int ais_header(char *line, int *col)
{
    char *f[MAX_FIELDS];
    int n = split_csv(line, f, MAX_FIELDS);
    for (int i = 0; i < AIS_NCOLS; i++)
        if ((col[i] = col_index(f, n, ais_names[i])) < 0) return -1;
    return 0;
}

static int ais_parse(char *line, const int *col, ais_row *r)
{
    char *f[MAX_FIELDS];
    int n = split_csv(line, f, MAX_FIELDS);
    double mmsi;
    for (int i = 0; i < AIS_NCOLS; i++)
        if (col[i] >= n) return -1;
    if (parse_time(f[col[AIS_TIME]], &r->t) || parse_num(f[col[AIS_LON]], &r->lon) ||
        parse_num(f[col[AIS_LAT]], &r->lat) || parse_num(f[col[AIS_MMSI]], &mmsi))
        return -1;
    if (parse_num(f[col[AIS_SOG]], &r->sog)) r->sog = NAN;
    if (parse_num(f[col[AIS_COG]], &r->cog)) r->cog = NAN;
    r->mmsi = (long long)mmsi;
    return coords_ok(r->lon, r->lat) ? 0 : -1;
}

static int cmp_ais(const void *a, const void *b)
{
    const ais_row *x = a, *y = b;
    if (x->mmsi != y->mmsi) return (x->mmsi > y->mmsi) - (x->mmsi < y->mmsi);
    return (x->t > y->t) - (x->t < y->t);
}

/* A vessel's points: its own SOG (knots) and COG where given; the COG
 * column holds some values below zero, taken modulo 360. */
static int ais_point(fl_rp_track *tr, const ais_row *r, double t0)
{
    float kmh = r->sog >= 0 && r->sog < SOG_UNKNOWN ? (float)(r->sog * KNOT_KMH) : NAN;
    float hdg = NAN;
    if (fabs(r->cog) <= 360.0) {
        double h = fmod(r->cog, 360.0);
        hdg = (float)(h < 0 ? h + 360.0 : h);
    }
    if (tr->npts && r->t <= tr->pts[tr->npts - 1].t + t0) return 0; /* duplicate */
    return fl_rp_track_add(tr, r->t - t0, r->lon, r->lat, kmh, hdg);
}

/* rows sorted by vessel then time: one PINGPONG track per vessel. */
static int ais_tracks(fl_rp_source *s, const ais_row *rows, size_t n)
{
    size_t cap = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        fl_rp_track tr = {0};
        int rc = 0;
        for (; j < n && rows[j].mmsi == rows[i].mmsi && !rc; j++)
            rc = ais_point(&tr, &rows[j], rows[i].t);
        if (!rc) rc = fl_rp_track_pingpong(&tr, MAX_VESSEL_KMH);
        if (!rc) rc = add_track(s, &cap, &tr);
        if (rc) {
            fl_rp_track_free(&tr);
            return rc;
        }
        i = j;
    }
    return 0;
}

/* ---- reading files ---- */

typedef struct loader {
    int header_done;
    int col[8];
    trip_list trips;
    ais_row *ais;
    size_t nais, ais_cap;
} loader;

/* One line of a CSV source; -ENOMEM is the only error (bad rows skip). */
static int csv_line(const fl_rp_source *s, loader *ld, char *line)
{
    fl_rp_taxi_trip t;
    if (strcmp(s->name, "nyc") == 0)
        return nyc_row(line, &t) ? 0 : trip_push(&ld->trips, &t);
    if (!ld->header_done) {
        ld->header_done = 1;
        int bad = strcmp(s->name, "chicago") == 0 ? chi_header(line, ld->col)
                                                   : ais_header(line, ld->col);
        return bad ? -EINVAL : 0;
    }
    if (strcmp(s->name, "chicago") == 0)
        return chi_row(line, ld->col, &t) ? 0 : trip_push(&ld->trips, &t);
    int rc = grow(&ld->ais, &ld->ais_cap, ld->nais, sizeof(*ld->ais));
    if (rc) return rc;
    if (ais_parse(line, ld->col, &ld->ais[ld->nais]) == 0) ld->nais++;
    return 0;
}

static int read_csv(const fl_rp_source *s, FILE *f, loader *ld)
{
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;
    while (!rc && getline(&line, &cap, f) >= 0) rc = csv_line(s, ld, line);
    if (!rc && ferror(f)) rc = -EIO;
    free(line);
    return rc;
}

static int csv_tracks(fl_rp_source *s, loader *ld)
{
    if (strcmp(s->name, "nyc") == 0)
        return ld->trips.n ? nyc_track(s, &ld->trips) : -EINVAL;
    if (strcmp(s->name, "chicago") == 0)
        return ld->trips.n ? chi_tracks(s, &ld->trips) : -EINVAL;
    if (ld->nais == 0) return -EINVAL;
    qsort(ld->ais, ld->nais, sizeof(*ld->ais), cmp_ais);
    return ais_tracks(s, ld->ais, ld->nais);
}

/* ---- the Munich car: [{"point":"POINT(lon lat)","time":"...","id":..}] ---- */

static int read_all(FILE *f, char **out)
{
    size_t len = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len - 1, f);
        if (len < cap - 1) break;
        char *b = realloc(buf, cap * 2);
        if (!b) break;
        buf = b;
        cap *= 2;
    }
    if (!buf || len == cap - 1) {
        free(buf);
        return -ENOMEM;
    }
    if (ferror(f)) {
        free(buf);
        return -EIO;
    }
    buf[len] = '\0';
    *out = buf;
    return 0;
}

/* Parses the sample at p; returns where the next search starts, or NULL. */
static const char *car_sample(const char *p, double *t, double *lon, double *lat)
{
    const char *pt = strstr(p, "POINT(");
    const char *tm = pt ? strstr(pt, "\"time\":\"") : NULL;
    if (!tm) return NULL;
    char *end;
    *lon = strtod(pt + 6, &end);
    *lat = strtod(end, &end);
    if (*end != ')' || parse_time(tm + 8, t)) *t = NAN;
    return tm + 8;
}

static int car_track(fl_rp_source *s, const char *json)
{
    fl_rp_track tr = {0};
    double t, lon, lat, t0 = NAN;
    int rc = 0;
    for (const char *p = json; !rc && (p = car_sample(p, &t, &lon, &lat));) {
        if (isnan(t) || !coords_ok(lon, lat)) continue;
        if (isnan(t0)) t0 = t;
        if (tr.npts && t - t0 <= tr.pts[tr.npts - 1].t) continue;
        rc = fl_rp_track_add(&tr, t - t0, lon, lat, NAN, NAN);
    }
    size_t cap = 0;
    if (!rc) rc = tr.npts ? fl_rp_track_pingpong(&tr, MAX_CAR_KMH) : -EINVAL;
    if (!rc) rc = add_track(s, &cap, &tr);
    if (rc) fl_rp_track_free(&tr);
    return rc;
}

/* ---- entry points ---- */

static int load_file(fl_rp_source *s, FILE *f)
{
    if (strcmp(s->name, "munich") == 0) {
        char *json;
        int rc = read_all(f, &json);
        if (rc) return rc;
        rc = car_track(s, json);
        free(json);
        return rc;
    }
    loader ld = {0};
    int rc = read_csv(s, f, &ld);
    if (!rc) rc = csv_tracks(s, &ld);
    free(ld.trips.v);
    free(ld.ais);
    return rc;
}

int fl_rp_source_load(fl_rp_source *s, const char *dir, char *err, size_t errlen)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/%s", dir, s->file) >= (int)sizeof(path)) {
        snprintf(err, errlen, "%s: path too long", s->name);
        return -ENAMETOOLONG;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return e == ENOENT ? -ENOENT : -EIO;
    }
    int rc = load_file(s, f);
    if (fclose(f) != 0 && !rc) rc = -EIO;
    if (!rc && s->ntracks == 0) rc = -EINVAL;
    if (rc) {
        snprintf(err, errlen, "%s: %s", path,
                 rc == -EINVAL ? "no usable records" : strerror(-rc));
        fl_rp_source_free(s);
    }
    return rc;
}

void fl_rp_source_free(fl_rp_source *s)
{
    for (uint32_t i = 0; i < s->ntracks; i++) fl_rp_track_free(&s->tracks[i]);
    free(s->tracks);
    s->tracks = NULL;
    s->ntracks = 0;
}
