// Peer runner for `compare --workload default`: imgpipe's built-in `default` preset made with sharp
// the fastest way it allows, timed in rounds (see harness.mjs for the arguments and the JSON it
// prints).
//
// Each image is decoded once (EXIF orientation applied) to raw pixels, and the three renditions
// are made from those pixels concurrently:
//   thumb  256×256, fit cover, WebP quality 80;
//   medium 1024 wide, fit inside, JPEG quality 82, watermarked;
//   large  2048 wide, fit inside, JPEG quality 85, watermarked.
// The watermark is imgpipe's: "© imgpipe" in white over a dark shadow, 25% of the rendition's
// width, at 50% opacity, in the bottom-right corner 2% of the width from the edges. It is drawn
// from SVG once per width and kept as a PNG, as imgpipe keeps its overlay. Renditions are never
// enlarged. The large rendition is what OUTPUT receives.

import { run } from './harness.mjs';

const RENDITIONS = [
  { width: 256, height: 256, fit: 'cover', format: 'webp', quality: 80, watermark: false },
  { width: 1024, fit: 'inside', format: 'jpeg', quality: 82, watermark: true },
  { width: 2048, fit: 'inside', format: 'jpeg', quality: 85, watermark: true },
];
const MARK_SCALE = 0.25;
const MARK_MARGIN = 0.02;
const MARK_OPACITY = 0.5;

// Watermark overlays by rendition width.
const marks = new Map();

async function mark(sharp, width) {
  let overlay = marks.get(width);
  if (!overlay) {
    const w = Math.max(1, Math.round(width * MARK_SCALE));
    const size = w / 4.6;
    const h = Math.ceil(size * 1.3);
    const shadow = Math.max(1, Math.round(size / 24));
    const text = (x, y, fill) =>
      `<text x="${x}" y="${y}" font-family="DejaVu Sans, sans-serif" font-size="${size}" textLength="${w - shadow}" ` +
      `lengthAdjust="spacingAndGlyphs" fill="${fill}">© imgpipe</text>`;
    const svg =
      `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}"><g opacity="${MARK_OPACITY}">` +
      text(shadow, size + shadow, 'rgba(0,0,0,0.63)') +
      text(0, size, '#fff') +
      '</g></svg>';
    const { data, info } = await sharp(Buffer.from(svg)).png().toBuffer({ resolveWithObject: true });
    overlay = { data, width: info.width, height: info.height };
    marks.set(width, overlay);
  }
  return overlay;
}

async function rendition(sharp, pixels, info, r) {
  const raw = { raw: { width: info.width, height: info.height, channels: info.channels } };
  let pipeline = sharp(pixels, raw);
  let outWidth;
  let outHeight;
  if (r.fit === 'cover') {
    pipeline = pipeline.resize(r.width, r.height, { fit: 'cover' });
    [outWidth, outHeight] = [r.width, r.height];
  } else {
    outWidth = Math.min(r.width, info.width);
    outHeight = Math.max(1, Math.round((info.height * outWidth) / info.width));
    pipeline = pipeline.resize(outWidth, outHeight, { fit: 'fill' });
  }
  if (r.watermark) {
    const overlay = await mark(sharp, outWidth);
    const margin = Math.round(outWidth * MARK_MARGIN);
    pipeline = pipeline.composite([
      {
        input: overlay.data,
        left: Math.max(0, outWidth - overlay.width - margin),
        top: Math.max(0, outHeight - overlay.height - margin),
      },
    ]);
  }
  pipeline = r.format === 'webp' ? pipeline.webp({ quality: r.quality }) : pipeline.jpeg({ quality: r.quality });
  return pipeline.toBuffer({ resolveWithObject: true });
}

run('sharp-default.mjs', async (sharp, input) => {
  const { data, info } = await sharp(input).rotate().raw().toBuffer({ resolveWithObject: true });
  const made = await Promise.all(RENDITIONS.map((r) => rendition(sharp, data, info, r)));
  return made[made.length - 1];
});
