/*
 * http.js - GET of a JSON document from fleetd, shared by the page and the
 * vehicle list worker: a non-2xx answer becomes an HttpError carrying the
 * status and the problem document's detail (RFC 9457) when there is one.
 */
export class HttpError extends Error {
    constructor(status, detail) {
        super(detail);
        this.status = status;
    }
}

export async function getJSON(url) {
    const res = await fetch(url, {headers: {Accept: 'application/json'}});
    if (!res.ok) {
        let detail = `${res.status} ${res.statusText}`;
        try {
            const p = await res.json();
            if (p && p.detail) detail = `${res.status}: ${p.detail}`;
        } catch { /* not a problem document */ }
        throw new HttpError(res.status, `${new URL(url, location.href).pathname}: ${detail}`);
    }
    return res.json();
}
