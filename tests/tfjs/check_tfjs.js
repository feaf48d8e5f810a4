// check_tfjs.js — TensorFlow.js 4.22 (pure JS, cpu backend) reads a model loom exported in the
// tfjs layers format and predicts on the inputs of test_keras_io.c's predict2.
//   node check_tfjs.js DIR/model.json > predictions.json
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');

async function main() {
  const file = process.argv[2];
  const json = JSON.parse(fs.readFileSync(file, 'utf8'));
  const specs = [].concat(...json.weightsManifest.map((g) => g.weights));
  const bufs = [].concat(...json.weightsManifest.map((g) => g.paths.map((p) => fs.readFileSync(path.join(path.dirname(file), p)))));
  const all = Buffer.concat(bufs);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  const handler = {load: async () => ({modelTopology: json.modelTopology, weightSpecs: specs, weightData})};
  await tf.setBackend('cpu');
  const model = await tf.loadLayersModel(handler);
  // the inputs of predict2: seq[i] = cos(0.3 i), img[i] = sin(0.11 i), 4 samples
  const seq = new Float32Array(4 * 15).map((_, i) => Math.fround(Math.cos(0.3 * i)));
  const img = new Float32Array(4 * 72).map((_, i) => Math.fround(Math.sin(0.11 * i)));
  const out = model.predict([tf.tensor(seq, [4, 5, 3]), tf.tensor(img, [4, 6, 6, 2])]);
  const names = model.outputNames;
  const result = {implementation: 'tfjs ' + tf.version.tfjs + ' (backend ' + tf.getBackend() + ')'};
  (Array.isArray(out) ? out : [out]).forEach((t, k) => { result[names[k]] = Array.from(t.dataSync()); });
  process.stdout.write(JSON.stringify(result, null, 1) + '\n');
}
main().catch((e) => { console.error(e); process.exit(1); });
