// onnx_ort.js — runs the models test_onnx_export exported (with --write DIR) in ONNX Runtime
// (onnxruntime-node, CPU) on the inputs of DIR/manifest.txt and prints the fixture
// tests/reference/onnx_ort.txt: for each model its inputs ("<model>/in/<name>") and ONNX
// Runtime's outputs ("<model>/out/<name>"), in tests/fixture.h's format.
// Manifest lines: "model NAME FILE", "input MODEL NAME BATCH RANK DIMS... VALUES...", "output MODEL NAME".
// Usage: node onnx_ort.js DIR   (onnx_ort.sh installs the package and calls it)
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

async function main() {
  const dir = process.argv[2];
  const models = [];
  for (const line of fs.readFileSync(path.join(dir, 'manifest.txt'), 'utf8').split('\n')) {
    const t = line.trim().split(/\s+/);
    if (t[0] === 'model') models.push({name: t[1], file: t[2], inputs: [], outputs: []});
    else if (t[0] === 'input') {
      const rank = Number(t[4]);
      const dims = t.slice(5, 5 + rank).map(Number);
      dims.unshift(Number(t[3]));
      const values = Float32Array.from(t.slice(5 + rank).map(Number));
      models[models.length - 1].inputs.push({name: t[2], dims, values});
    } else if (t[0] === 'output') models[models.length - 1].outputs.push(t[2]);
  }
  const version = require('onnxruntime-node/package.json').version;
  const out = [`# made by tests/reference/onnx_ort.js (onnxruntime-node ${version}, CPU) from the models and`,
               '# inputs of test_onnx_export --write; regenerate with tests/reference/onnx_ort.sh'];
  const fmt = (v) => Array.from(v, (x) => Number(x).toPrecision(9)).join(' ');
  for (const m of models) {
    const session = await ort.InferenceSession.create(path.join(dir, m.file),
        {executionProviders: ['cpu'], graphOptimizationLevel: 'all'});
    const feeds = {};
    for (const i of m.inputs) {
      feeds[i.name] = new ort.Tensor('float32', i.values, i.dims);
      out.push(`${m.name}/in/${i.name} ${i.values.length}`, fmt(i.values));
    }
    const result = await session.run(feeds);
    for (const o of m.outputs) {
      const y = result[o].data;
      out.push(`${m.name}/out/${o} ${y.length}`, fmt(y));
    }
  }
  process.stdout.write(out.join('\n') + '\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
