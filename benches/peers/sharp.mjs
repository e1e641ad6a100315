// Peer runner for `compare`: sharp's own benchmark workload, timed in rounds (see harness.mjs
// for the arguments and the JSON it prints).
//
// Each image: sharp(INPUT) (file in) .resize(720, 588) (fit cover, Lanczos3) .jpeg({ quality: 80 })
// .toBuffer() (buffer out).

import { run } from './harness.mjs';

const WIDTH = 720;
const HEIGHT = 588;
const QUALITY = 80;

run('sharp.mjs', (sharp, input) =>
  sharp(input).resize(WIDTH, HEIGHT).jpeg({ quality: QUALITY }).toBuffer({ resolveWithObject: true }),
);
