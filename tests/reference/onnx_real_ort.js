// onnx_real_ort.js — runs the real Keras files that test_onnx_real exported (with --write DIR) in
// ONNX Runtime (onnxruntime-node, CPU) on their reference inputs and writes ONNX Runtime's outputs
// as OUT/<model>/ort_output_<k>.npy (float32, C order), the fixture test_onnx_real compares.
// Manifest lines: "model NAME FILE", "input NAME NPY_PATH", "output NAME K".
// Usage: node onnx_real_ort.js DIR OUT   (onnx_real_ort.sh installs the package and calls it)
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

// A little-endian float32 .npy (versions 1-3), as NumPy writes it.
function readNpy(file) {
  const b = fs.readFileSync(file);
  if (b.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${file}: not a .npy file`);
  const major = b[6];
  const hlen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = b.toString('latin1', start, start + hlen);
  if (!/'descr':\s*'<f4'/.test(header) || /'fortran_order':\s*True/.test(header))
    throw new Error(`${file}: not little-endian float32 in C order: ${header}`);
  const dims = header.match(/'shape':\s*\(([^)]*)\)/)[1].split(',').filter((s) => s.trim()).map(Number);
  const count = dims.reduce((a, d) => a * d, 1);
  const data = new Float32Array(count);
  for (let i = 0; i < count; i++) data[i] = b.readFloatLE(start + hlen + 4 * i);
  return {dims, data};
}

function writeNpy(file, dims, data) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims.join(', ')}${dims.length === 1 ? ',' : ''}), }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += ' '.repeat(pad % 64) + '\n';
  const b = Buffer.alloc(10 + header.length + 4 * data.length);
  b.write('\x93NUMPY', 0, 'latin1');
  b[6] = 1;
  b[7] = 0;
  b.writeUInt16LE(header.length, 8);
  b.write(header, 10, 'latin1');
  for (let i = 0; i < data.length; i++) b.writeFloatLE(data[i], 10 + header.length + 4 * i);
  fs.writeFileSync(file, b);
}

async function main() {
  const [dir, out] = process.argv.slice(2);
  const models = [];
  for (const line of fs.readFileSync(path.join(dir, 'manifest.txt'), 'utf8').split('\n')) {
    const t = line.trim().split(/\s+/);
    if (t[0] === 'model') models.push({name: t[1], file: t[2], inputs: [], outputs: []});
    else if (t[0] === 'input') models[models.length - 1].inputs.push({name: t[1], file: t[2]});
    else if (t[0] === 'output') models[models.length - 1].outputs.push({name: t[1], k: Number(t[2])});
  }
  for (const m of models) {
    const session = await ort.InferenceSession.create(path.join(dir, m.file),
        {executionProviders: ['cpu'], graphOptimizationLevel: 'all'});
    const feeds = {};
    for (const i of m.inputs) {
      const a = readNpy(i.file);
      feeds[i.name] = new ort.Tensor('float32', a.data, a.dims);
    }
    const result = await session.run(feeds);
    fs.mkdirSync(path.join(out, m.name), {recursive: true});
    for (const o of m.outputs) {
      const y = result[o.name];
      writeNpy(path.join(out, m.name, `ort_output_${o.k}.npy`), y.dims, y.data);
    }
    console.log(`onnx_real_ort: ${m.name}: ${m.outputs.map((o) => `${o.name} (${result[o.name].dims.join('x')})`).join(', ')}`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
