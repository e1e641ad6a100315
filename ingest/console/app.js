// imgpipe's web console: uploads through presigned PUTs, watches each image's status, browses
// the records. It speaks only the public API (see /v1/openapi.json). Every string from the
// server or a file name becomes a text node, never markup.

const KEY_STORAGE = 'imgpipe.apiKey';
const PARALLEL_UPLOADS = 4;
const PRESIGN_BATCH = 50;
const POLL_BATCH = 8;
const PAGE_SIZE = 24;
const PRESIGNABLE = {
  jpg: 'image/jpeg', jpeg: 'image/jpeg', png: 'image/png', gif: 'image/gif', webp: 'image/webp',
};
const FINAL = new Set(['DONE', 'FAILED']);

const $ = (id) => document.getElementById(id);

/** An element with attributes (`on*` keys become listeners) and children (strings are text). */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name === 'className') node.className = value;
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

// --- The API --------------------------------------------------------------------------------

/** A refusal of the API: its HTTP status, stable `code` and message. */
class ApiError extends Error {
  constructor(status, code, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code || 'http_error';
  }
}

let apiKey = sessionStorage.getItem(KEY_STORAGE);
let keyWaiters = [];

function authHeaders(headers = {}) {
  return apiKey ? { ...headers, 'x-api-key': apiKey } : headers;
}

/** `fetch` with the key; on 401 it asks for the key once and tries again with it. */
async function api(path, options = {}) {
  for (;;) {
    const response = await fetch(path, { ...options, headers: authHeaders(options.headers) });
    if (response.status !== 401) return response;
    await askForKey(apiKey ? 'That key was refused. Try again.' : '');
  }
}

async function apiJson(path, options) {
  const response = await api(path, options);
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body && body.code, body && body.message);
  return body;
}

function askForKey(problem) {
  $('key-view').hidden = false;
  $('key-error').textContent = problem;
  $('key-input').focus();
  return new Promise((resolve) => { keyWaiters.push(resolve); });
}

$('key-form').addEventListener('submit', (event) => {
  event.preventDefault();
  apiKey = $('key-input').value.trim();
  sessionStorage.setItem(KEY_STORAGE, apiKey);
  $('key-input').value = '';
  $('key-view').hidden = true;
  const waiters = keyWaiters;
  keyWaiters = [];
  waiters.forEach((resolve) => resolve());
});

function showError(error) {
  $('message').textContent = error ? `${error.code ? `${error.code}: ` : ''}${error.message}` : '';
}

// --- Renditions as blobs (an <img> cannot send the key) ----------------------------------

const renditionUrls = new Map();

async function renditionUrl(id, name) {
  const cacheKey = `${id}/${name}`;
  if (!renditionUrls.has(cacheKey)) {
    renditionUrls.set(cacheKey, (async () => {
      const response = await api(`/v1/images/${id}/renditions/${encodeURIComponent(name)}`);
      if (!response.ok) throw new ApiError(response.status, 'rendition', `rendition ${name}: HTTP ${response.status}`);
      return URL.createObjectURL(await response.blob());
    })());
  }
  return renditionUrls.get(cacheKey);
}

function smallest(renditions) {
  return [...renditions].sort((a, b) => a.width * a.height - b.width * b.height)[0];
}

/** An <img> that fills in once the rendition has loaded. */
function renditionImage(record, rendition, alt) {
  const image = el('img', { alt, width: rendition.width, height: rendition.height });
  renditionUrl(record.id, rendition.name).then((url) => { image.src = url; }).catch(() => {
    image.alt = `${alt} (could not load)`;
  });
  return image;
}

function thumbnail(record) {
  if (record.status !== 'DONE' || !record.renditions || record.renditions.length === 0) return null;
  const rendition = smallest(record.renditions);
  const image = renditionImage(record, rendition, record.filename || record.id);
  image.className = 'thumb';
  return image;
}

function statusBadge(status) {
  return el('span', { className: `badge status-${status.toLowerCase()}` }, status);
}

function failure(record) {
  if (!record.error) return null;
  return el('span', { className: 'failure' }, el('strong', {}, record.error.kind), ' ', record.error.message);
}

// --- Upload --------------------------------------------------------------------------------

/** Every file this tab was given, in order, with where it is. */
const uploads = [];
let activeUploads = 0;

function guessType(file) {
  const extension = (file.name.split('.').pop() || '').toLowerCase();
  return Object.values(PRESIGNABLE).includes(file.type) ? file.type : PRESIGNABLE[extension] || null;
}

function addFiles(files) {
  for (const file of files) {
    const name = file.webkitRelativePath || file.relativePath || file.name;
    const entry = {
      file, name, type: guessType(file), state: 'queued', sent: 0, id: null, grant: null, record: null,
    };
    entry.progress = el('progress', { max: file.size || 1, value: 0, 'aria-label': `Upload of ${name}` });
    entry.status = el('td', { className: 'status' }, 'waiting');
    entry.action = el('td');
    entry.row = el('tr', {}, el('td', { className: 'name' }, name), el('td', {}, entry.progress), entry.status, entry.action);
    $('uploads').tBodies[0].append(entry.row);
    uploads.push(entry);
  }
  pump();
  updateOverall();
}

function updateOverall() {
  const total = uploads.reduce((sum, u) => sum + (u.file.size || 1), 0);
  const sent = uploads.reduce((sum, u) => sum + u.sent, 0);
  $('overall').max = total || 1;
  $('overall').value = sent;
  const count = (predicate) => uploads.filter(predicate).length;
  const uploaded = count((u) => u.id && u.state !== 'queued' && u.state !== 'uploading' && u.state !== 'upload-failed');
  const done = count((u) => u.record && u.record.status === 'DONE');
  const failed = count((u) => u.record && u.record.status === 'FAILED');
  const broken = count((u) => u.state === 'upload-failed');
  $('overall-text').textContent = uploads.length === 0 ? '' :
    `${uploaded} of ${uploads.length} uploaded · ${done} done · ${failed} failed${broken ? ` · ${broken} uploads to retry` : ''}`;
}

function setUploadStatus(entry, text, className = '') {
  entry.status.replaceChildren(text instanceof Node ? text : document.createTextNode(text));
  entry.status.className = `status ${className}`;
}

/** Starts uploads while fewer than PARALLEL_UPLOADS run. */
function pump() {
  while (activeUploads < PARALLEL_UPLOADS) {
    const entry = uploads.find((u) => u.state === 'queued');
    if (!entry) return;
    entry.state = 'uploading';
    activeUploads += 1;
    uploadOne(entry).finally(() => {
      activeUploads -= 1;
      updateOverall();
      pump();
    });
  }
}

async function uploadOne(entry) {
  try {
    setUploadStatus(entry, 'uploading');
    if (entry.type) {
      if (!entry.grant) await presignBatch(entry);
      if (entry.grant) await put(entry);
    }
    if (!entry.grant) await uploadDirect(entry);
    entry.state = 'watching';
    entry.sent = entry.file.size || 1;
    entry.progress.value = entry.progress.max;
    entry.record = { status: 'PENDING' };
    setUploadStatus(entry, statusBadge('PENDING'));
    entry.action.replaceChildren();
    watch(entry);
  } catch (error) {
    entry.state = 'upload-failed';
    // A retry reuses the slot while its URL has a minute left, else asks for a new one.
    if (entry.grant && entry.grant.expires_at * 1000 < Date.now() + 60_000) entry.grant = null;
    entry.sent = 0;
    entry.progress.value = 0;
    setUploadStatus(entry, `upload failed: ${error.message}`, 'error');
    entry.action.replaceChildren(el('button', {
      type: 'button',
      onclick: () => { entry.state = 'queued'; entry.action.replaceChildren(); setUploadStatus(entry, 'waiting'); pump(); },
    }, 'Retry'));
  }
}

/** Presigns `entry` and up to PRESIGN_BATCH - 1 other waiting files in one request (a file
 * already in a request in flight waits for that one: one slot per file). */
async function presignBatch(entry) {
  if (!entry.presigning) {
    const batch = [entry, ...uploads.filter((u) => u !== entry && u.state === 'queued' && u.type && !u.grant && !u.presigning)]
      .slice(0, PRESIGN_BATCH);
    const request = presign(batch);
    batch.forEach((u) => { u.presigning = request; });
    request.finally(() => batch.forEach((u) => { u.presigning = null; })).catch(() => {});
  }
  await entry.presigning;
}

async function presign(batch) {
  const body = {
    preset: $('preset').value || undefined,
    files: batch.map((u) => ({ filename: u.name, content_type: u.type, bytes: u.file.size })),
  };
  try {
    const answer = await apiJson('/v1/uploads', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    answer.uploads.forEach((grant, i) => { batch[i].grant = grant; batch[i].id = grant.id; });
  } catch (error) {
    // A type this deployment does not take: those files go up one by one, directly.
    if (error.code !== 'unsupported_content_type' && error.code !== 'empty_upload') throw error;
    batch.forEach((u) => { u.type = null; });
  }
}

/** The presigned PUT, with progress (fetch cannot report upload progress). */
function put(entry) {
  const { grant } = entry;
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open('PUT', grant.url);
    for (const [name, value] of Object.entries(grant.headers)) request.setRequestHeader(name, value);
    request.upload.addEventListener('progress', (event) => {
      entry.sent = event.loaded;
      entry.progress.value = event.loaded;
      updateOverall();
    });
    request.addEventListener('load', () => {
      // 409 (this API) and 412 (S3's If-None-Match): an earlier try stored the bytes already.
      if ((request.status >= 200 && request.status < 300) || request.status === 409 || request.status === 412) resolve();
      else reject(new Error(`HTTP ${request.status}`));
    });
    request.addEventListener('error', () => reject(new Error('network error')));
    request.addEventListener('abort', () => reject(new Error('aborted')));
    request.send(entry.file);
  });
}

/** One file through `POST /v1/images` (multipart), for types a presigned slot does not take. */
async function uploadDirect(entry) {
  const form = new FormData();
  const preset = $('preset').value;
  if (preset) form.append('preset', preset);
  form.append('file', entry.file, entry.name);
  const answer = await apiJson('/v1/images', { method: 'POST', body: form });
  entry.id = answer.images[0].id;
}

// --- Watch: each image's status, polled with backoff --------------------------------------

let watching = false;

function watch(entry) {
  entry.watchedAt = 0;
  if (!watching) {
    watching = true;
    pollStatuses();
  }
}

async function pollStatuses() {
  let delay = 400;
  for (;;) {
    const open = uploads.filter((u) => u.state === 'watching');
    if (open.length === 0) break;
    open.sort((a, b) => a.watchedAt - b.watchedAt);
    const round = open.slice(0, POLL_BATCH);
    let changed = false;
    await Promise.all(round.map(async (entry) => {
      entry.watchedAt = Date.now();
      try {
        const record = await apiJson(`/v1/images/${entry.id}`);
        if (record.status !== entry.record.status) changed = true;
        showRecord(entry, record);
      } catch (error) {
        if (error.status !== 404) setUploadStatus(entry, `status unknown: ${error.message}`, 'error');
      }
    }));
    updateOverall();
    delay = changed ? 400 : Math.min(delay * 1.5, 5000);
    await sleep(delay);
  }
  watching = false;
}

function showRecord(entry, record) {
  entry.record = record;
  if (FINAL.has(record.status)) entry.state = 'final';
  const link = el('a', { href: `#/images/${record.id}` }, statusBadge(record.status));
  setUploadStatus(entry, el('span', {}, link, ' ', thumbnail(record), failure(record)));
}

// --- Queue depth and throughput ------------------------------------------------------------

let lastFinished = null;

async function pollStats() {
  let delay = 2000;
  for (;;) {
    const parts = [];
    try {
      const queue = await api('/v1/queue');
      if (queue.ok) {
        const depth = await queue.json();
        parts.push(`queue ${depth.visible} waiting, ${depth.in_flight} in flight`);
      }
      const metrics = await api('/metrics');
      if (metrics.ok) {
        const text = await metrics.text();
        const count = (status) => Number((text.match(new RegExp(`^imgpipe_images\\{status="${status}"\\} (\\d+)`, 'm')) || [])[1]);
        const finished = count('DONE') + count('FAILED');
        if (Number.isFinite(finished)) {
          const now = Date.now();
          if (lastFinished) {
            const rate = (finished - lastFinished.count) / ((now - lastFinished.at) / 1000);
            parts.push(`${Math.max(rate, 0).toFixed(1)} images/s`);
          }
          parts.push(`${count('DONE')} done, ${count('FAILED')} failed`);
          lastFinished = { count: finished, at: now };
        }
      }
      delay = 2000;
    } catch {
      delay = Math.min(delay * 2, 30000);
    }
    $('stats').textContent = parts.join(' · ');
    await sleep(delay);
  }
}

// --- Presets -------------------------------------------------------------------------------

let presets = [];

async function loadPresets() {
  const answer = await apiJson('/v1/presets');
  presets = answer.presets;
  const select = $('preset');
  select.replaceChildren(...presets.map((p) => el('option', { value: p.name, selected: p.name === answer.default }, p.name)));
  describePreset();
}

function describePreset() {
  const preset = presets.find((p) => p.name === $('preset').value);
  $('preset-info').textContent = preset ? preset.renditions.map((r) => {
    const box = [r.width, r.height].map((n) => n || '∞').join('×');
    return `${r.name}: ${r.format} ${r.fit} ${box}${r.watermark ? ', watermarked' : ''}`;
  }).join(' · ') : '';
}

// --- Browse --------------------------------------------------------------------------------

const pages = { cursors: [''], index: 0 };

async function showGallery() {
  const status = $('status-filter').value;
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (status) query.set('status', status);
  const cursor = pages.cursors[pages.index];
  if (cursor) query.set('cursor', cursor);
  const page = await apiJson(`/v1/images?${query}`);
  pages.cursors[pages.index + 1] = page.next_cursor;
  const cards = page.images.map((record) => el('li', { className: 'card' },
    el('a', { href: `#/images/${record.id}`, 'aria-label': `${record.filename || record.id}, ${record.status}` },
      thumbnail(record) || el('div', { className: 'placeholder' }, record.status)),
    el('p', { className: 'name' }, record.filename || record.id),
    el('p', {}, statusBadge(record.status), record.original ? ` ${record.original.width}×${record.original.height}` : ''),
    failure(record)));
  $('gallery').replaceChildren(...(cards.length ? cards : [el('li', { className: 'muted' }, 'No images.')]));
  $('page-number').textContent = `Page ${pages.index + 1}`;
  $('prev').disabled = pages.index === 0;
  $('next').disabled = !page.next_cursor;
}

function resetPages() {
  pages.cursors = [''];
  pages.index = 0;
}

$('status-filter').addEventListener('change', () => { resetPages(); showGallery().catch(showError); });
$('refresh').addEventListener('click', () => { resetPages(); showGallery().catch(showError); });
$('prev').addEventListener('click', () => { pages.index = Math.max(pages.index - 1, 0); showGallery().catch(showError); });
$('next').addEventListener('click', () => { pages.index += 1; showGallery().catch(showError); });

function facts(rows) {
  return el('dl', { className: 'facts' }, rows.filter(([, value]) => value !== undefined && value !== null)
    .map(([term, value]) => [el('dt', {}, term), el('dd', {}, value)]));
}

async function download(record, rendition) {
  const link = el('a', { href: await renditionUrl(record.id, rendition.name), download: `${record.id}-${rendition.name}.${rendition.format}` });
  document.body.append(link);
  link.click();
  link.remove();
}

/** A chip of `color` (set through the CSSOM: the page's CSP allows no inline styles) and its code. */
function swatch(color) {
  const chip = el('span', { className: 'swatch', 'aria-hidden': 'true' });
  chip.style.backgroundColor = color;
  return el('span', {}, chip, ' ', color);
}

async function showImage(id) {
  const record = await apiJson(`/v1/images/${encodeURIComponent(id)}`);
  $('image-title').textContent = record.filename || record.id;
  const time = (ms) => (ms ? new Date(ms).toISOString() : undefined);
  const body = [
    el('p', {}, statusBadge(record.status), ' ', failure(record)),
    el('h3', {}, 'Original'),
    facts([
      ['Id', record.id], ['File name', record.filename], ['Preset', record.preset],
      ['Format', record.original && record.original.format],
      ['Size', record.original && `${record.original.width}×${record.original.height}`],
      ['EXIF orientation', record.original && record.original.orientation],
      ['Dominant colour', record.placeholder && swatch(record.placeholder.dominant_color)],
      ['Bytes', formatBytes(record.source.bytes)], ['Content type', record.source.content_type],
      ['Accepted', time(record.created_ms)], ['Finished', time(record.finished_ms)], ['Attempts', record.attempts],
    ]),
  ];
  if (record.renditions && record.renditions.length) {
    body.push(el('h3', {}, 'Renditions'), el('table', { className: 'renditions' },
      el('thead', {}, el('tr', {}, ['Name', 'Size', 'Format', 'Bytes', ''].map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, record.renditions.map((r) => el('tr', {},
        el('td', {}, r.name), el('td', {}, `${r.width}×${r.height}`), el('td', {}, r.format), el('td', {}, formatBytes(r.bytes)),
        el('td', {}, el('button', { type: 'button', onclick: () => download(record, r).catch(showError) }, `Download ${r.name}`)))))));
    const preview = record.renditions.filter((r) => r.width <= 1024).sort((a, b) => b.width - a.width)[0] || smallest(record.renditions);
    body.push(el('figure', {}, renditionImage(record, preview, `${preview.name} of ${record.filename || record.id}`), el('figcaption', {}, preview.name)));
  }
  if (record.durations_ms) {
    const stages = Object.entries(record.durations_ms);
    const longest = Math.max(...stages.map(([, ms]) => ms), 1);
    body.push(el('h3', {}, 'Stage timings'), el('table', { className: 'timings' }, el('tbody', {}, stages.map(([stage, ms]) => el('tr', {},
      el('th', { scope: 'row' }, stage),
      el('td', {}, el('meter', { min: 0, max: longest, value: ms, 'aria-label': `${stage} time` })),
      el('td', {}, `${ms.toFixed(1)} ms`))))));
  }
  $('image-body').replaceChildren(...body);
}

// --- Routing -------------------------------------------------------------------------------

async function route() {
  showError(null);
  const [, section, id] = window.location.hash.split('/');
  const view = section === 'images' ? (id ? 'image' : 'images') : 'upload';
  for (const name of ['upload', 'images', 'image']) $(`${name}-view`).hidden = name !== view;
  $('nav-upload').toggleAttribute('aria-current', view === 'upload');
  $('nav-images').toggleAttribute('aria-current', view !== 'upload');
  try {
    if (view === 'images') {
      resetPages();
      await showGallery();
    } else if (view === 'image') {
      await showImage(decodeURIComponent(id));
    } else if (presets.length === 0) {
      await loadPresets();
    }
  } catch (error) {
    showError(error);
  }
}

// --- Files from the picker, the folder picker and drag and drop ------------------------------

/** Every file under a dropped entry (folders read recursively). */
async function entryFiles(entry, prefix = '') {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => { entry.file(resolve, reject); });
    file.relativePath = `${prefix}${file.name}`;
    return [file];
  }
  const reader = entry.createReader();
  const files = [];
  for (;;) {
    const batch = await new Promise((resolve, reject) => { reader.readEntries(resolve, reject); });
    if (batch.length === 0) break;
    for (const child of batch) files.push(...await entryFiles(child, `${prefix}${entry.name}/`));
  }
  return files;
}

const drop = $('drop');
drop.addEventListener('dragover', (event) => { event.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', async (event) => {
  event.preventDefault();
  drop.classList.remove('over');
  const entries = [...event.dataTransfer.items].map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry()).filter(Boolean);
  if (entries.length === 0) {
    addFiles(event.dataTransfer.files);
    return;
  }
  const files = [];
  for (const entry of entries) files.push(...await entryFiles(entry));
  addFiles(files);
});
drop.addEventListener('click', () => $('files').click());
drop.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); $('files').click(); }
});
for (const id of ['files', 'folder']) {
  $(id).addEventListener('change', (event) => { addFiles([...event.target.files]); event.target.value = ''; });
}
$('preset').addEventListener('change', describePreset);

window.addEventListener('hashchange', route);
route();
pollStats();
