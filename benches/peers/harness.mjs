// What the sharp runners share: their arguments, loading sharp, and the timed loop.
//
// usage of a runner: node RUNNER.mjs INPUT THREADS WARMUP ROUNDS PER_ROUND OUTPUT
//
// `run(name, makeOne)` parses those arguments, loads sharp (from $IMGPIPE_NODE_PREFIX/node_modules
// when that is set, else resolved from this directory) with sharp.cache(false) and
// sharp.concurrency(1), and awaits `makeOne(sharp, input)` THREADS at a time (Promise.all
// batches; set UV_THREADPOOL_SIZE=THREADS so libuv has a thread for each). `makeOne` resolves to
// `{ data, info }` of the image to keep. Prints one line of JSON on stdout:
// {"ms_per_image", "rounds_ms", "images_per_round", "bytes", "width", "height", "version"}
// where ms_per_image is the median over rounds of (round wall time / images in round), and writes
// the last image kept to OUTPUT.

import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

function parseCount(name, text, min) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) {
    throw new Error(`${name} must be an integer >= ${min}, got ${JSON.stringify(text)}`);
  }
  return n;
}

function loadSharp() {
  const prefix = process.env.IMGPIPE_NODE_PREFIX;
  const require = createRequire(prefix ? join(prefix, 'package.json') : import.meta.url);
  return require('sharp');
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function main(name, makeOne) {
  const args = process.argv.slice(2);
  if (args.length !== 6) {
    throw new Error(`usage: node ${name} INPUT THREADS WARMUP ROUNDS PER_ROUND OUTPUT`);
  }
  const [input, threadsArg, warmupArg, roundsArg, perRoundArg, output] = args;
  const threads = parseCount('THREADS', threadsArg, 1);
  const warmup = parseCount('WARMUP', warmupArg, 0);
  const rounds = parseCount('ROUNDS', roundsArg, 1);
  const perRound = parseCount('PER_ROUND', perRoundArg, 1);

  const sharp = loadSharp();
  sharp.cache(false);
  sharp.concurrency(1);

  // `count` images, `threads` at a time; resolves to the last result.
  async function batch(count) {
    let last;
    for (let done = 0; done < count; done += threads) {
      const inFlight = Array.from({ length: Math.min(threads, count - done) }, () => makeOne(sharp, input));
      const results = await Promise.all(inFlight);
      last = results[results.length - 1];
    }
    return last;
  }

  await batch(warmup);
  const roundsMs = [];
  let last;
  for (let r = 0; r < rounds; r++) {
    const start = performance.now();
    last = await batch(perRound);
    roundsMs.push(performance.now() - start);
  }
  writeFileSync(output, last.data);

  const report = {
    ms_per_image: median(roundsMs.map((ms) => ms / perRound)),
    rounds_ms: roundsMs,
    images_per_round: perRound,
    bytes: last.data.length,
    width: last.info.width,
    height: last.info.height,
    version: `${sharp.versions.sharp} (libvips ${sharp.versions.vips})`,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

/** Runs the timed loop of the runner `name` (see the top of this file); exits 1 on failure. */
export function run(name, makeOne) {
  main(name, makeOne).catch((err) => {
    console.error(`${name}: ${err && err.stack ? err.stack : err}`);
    process.exit(1);
  });
}
