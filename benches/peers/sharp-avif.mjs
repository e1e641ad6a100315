// Peer runner for `compare --workload avif`: sharp's benchmark workload encoded as AVIF, timed in
// rounds (see harness.mjs for the arguments and the JSON it prints).
//
// Each image: sharp(INPUT) (file in) .resize(720, 588) (fit cover, Lanczos3)
// .avif({ quality: 60, effort: 4, chromaSubsampling: '4:4:4', bitdepth: 8 }) (libaom through
// libheif; effort 4 is sharp's default) .toBuffer() (buffer out). imgpipe's AVIF is 8-bit 4:4:4.

import { run } from './harness.mjs';

const WIDTH = 720;
const HEIGHT = 588;

run('sharp-avif.mjs', (sharp, input) =>
  sharp(input)
    .resize(WIDTH, HEIGHT)
    .avif({ quality: 60, effort: 4, chromaSubsampling: '4:4:4', bitdepth: 8 })
    .toBuffer({ resolveWithObject: true }),
);
