// make_zoo.js — TensorFlow.js 4.22 (pure JS, cpu backend) builds and saves the models of
// tests/tfjs_zoo/ and their predictions; test_keras_more imports each with loom and compares.
//   node make_zoo.js OUT_DIR        (run by make_zoo.sh, which installs tfjs)
// Each model is saved by tf.io.withSaveHandler as <name>/model.json + <name>/weights.bin (the
// layout of tfjs's own file handler: modelTopology, weightsManifest with one group), its weights
// set to seeded values away from their initialisers (moving variances positive), and predicted on
// seeded inputs: <name>/input_<i>.npy, <name>/output_<k>.npy (float32). index.txt lists
// "<name> <inputs> <outputs> [refused: <part of loom's message>]".
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');

let seed = 12345;
function rand() { // a small LCG: the same fixtures on every run
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
}
function uniform(shape, lo, hi) {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({length: n}, () => lo + (hi - lo) * rand()), shape);
}
function ints(shape, lo, hi) { // integer values as float32 (token ids; 0 = masked)
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({length: n}, () => Math.floor(lo + (hi - lo) * rand())), shape);
}

function npy(file, t) {
  const shape = t.shape;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  while ((10 + header.length + 1) % 64 !== 0) header += ' ';
  header += '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1; pre[7] = 0; pre.writeUInt16LE(header.length, 8);
  const data = Buffer.from(new Float32Array(t.dataSync()).buffer);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), data]));
}

function setWeights(model) {
  const ws = model.weights.map((w) => {
    const lo = /moving_variance|gamma/.test(w.name) ? 0.5 : -0.5;
    const hi = /moving_variance|gamma/.test(w.name) ? 1.5 : 0.5;
    return uniform(w.shape, lo, hi);
  });
  model.setWeights(ws);
}

const L = tf.layers;
const models = [];
function add(name, build, inputs, refusal) { models.push({name, build, inputs, refusal}); }
const B = 3;

// Sequential, initializer / regularizer objects, dropout, activations
add('seq_dense', () => {
  const m = tf.sequential();
  m.add(L.dense({units: 8, inputShape: [5], activation: 'relu', kernelInitializer: tf.initializers.varianceScaling({scale: 2, mode: 'fanIn', distribution: 'normal'}),
                 kernelRegularizer: tf.regularizers.l1l2({l1: 0.001, l2: 0.01}), biasInitializer: 'zeros'}));
  m.add(L.dropout({rate: 0.3}));
  m.add(L.dense({units: 6, activation: 'elu', kernelInitializer: 'glorotNormal', biasRegularizer: tf.regularizers.l2({l2: 0.02})}));
  m.add(L.dense({units: 5, activation: 'softplus'}));
  m.add(L.dense({units: 4, activation: 'sigmoid', useBias: false, kernelInitializer: 'heUniform'}));
  m.add(L.activation({activation: 'tanh'}));
  m.add(L.dense({units: 3, activation: 'softmax', kernelInitializer: 'leCunNormal'}));
  m.compile({optimizer: tf.train.adam(0.003), loss: 'categoricalCrossentropy', metrics: ['accuracy']});
  return m;
}, () => [uniform([B, 5], -1, 1)]);

// Functional: two inputs, two outputs, merge layers
add('multi_io', () => {
  const a = tf.input({shape: [4], name: 'a'}), b = tf.input({shape: [4], name: 'b'});
  const ha = L.dense({units: 6, activation: 'relu', name: 'ha'}).apply(a);
  const hb = L.dense({units: 6, activation: 'tanh', name: 'hb'}).apply(b);
  const s = L.add({name: 'sum'}).apply([ha, hb]);
  const p = L.multiply({name: 'prod'}).apply([ha, hb]);
  const c = L.concatenate({axis: -1, name: 'cat'}).apply([s, p, a]);
  const y1 = L.dense({units: 3, activation: 'softmax', name: 'cls'}).apply(c);
  const y2 = L.dense({units: 1, name: 'reg'}).apply(L.add({name: 'sum2'}).apply([ha, s]));
  const m = tf.model({inputs: [a, b], outputs: [y1, y2]});
  m.compile({optimizer: tf.train.sgd(0.05), loss: ['categoricalCrossentropy', 'meanSquaredError'], lossWeights: [1, 0.5]});
  return m;
}, () => [uniform([B, 4], -1, 1), uniform([B, 4], -1, 1)]);

// a shared layer called on two inputs; maximum / minimum merges
add('shared_layer', () => {
  const a = tf.input({shape: [5], name: 'left'}), b = tf.input({shape: [5], name: 'right'});
  const shared = L.dense({units: 4, activation: 'relu', name: 'shared'});
  const ea = shared.apply(a), eb = shared.apply(b);
  const y = L.dense({units: 2, name: 'out'}).apply(L.concatenate({name: 'cat'}).apply([ea, eb]));
  return tf.model({inputs: [a, b], outputs: y});
}, () => [uniform([B, 5], -1, 1), uniform([B, 5], -1, 1)]);

// a Sequential model used as a layer of a functional one
add('nested', () => {
  const inner = tf.sequential({name: 'inner'});
  inner.add(L.dense({units: 6, inputShape: [4], activation: 'relu', name: 'inner_d1'}));
  inner.add(L.dense({units: 5, activation: 'tanh', name: 'inner_d2'}));
  const x = tf.input({shape: [4], name: 'x'});
  const h = inner.apply(x);
  const y = L.dense({units: 2, name: 'head'}).apply(h);
  return tf.model({inputs: x, outputs: y});
}, () => [uniform([B, 4], -1, 1)]);

// Embedding with mask_zero into stacked recurrent layers (return_sequences), masks through them
add('rnn_mask', () => {
  const x = tf.input({shape: [7], name: 'tokens'});
  let h = L.embedding({inputDim: 12, outputDim: 5, maskZero: true, name: 'emb', embeddingsInitializer: 'randomUniform'}).apply(x);
  h = L.lstm({units: 4, returnSequences: true, name: 'lstm', recurrentInitializer: 'orthogonal', unitForgetBias: true}).apply(h);
  h = L.gru({units: 3, returnSequences: true, name: 'gru', resetAfter: false}).apply(h);
  h = L.simpleRNN({units: 3, name: 'srnn', activation: 'tanh'}).apply(h);
  const y = L.dense({units: 2, activation: 'softmax', name: 'out'}).apply(h);
  return tf.model({inputs: x, outputs: y});
}, () => {
  const t = ints([B, 7], 1, 12).arraySync();
  t[0][5] = 0; t[0][6] = 0; t[1][6] = 0; // trailing padding
  return [tf.tensor(t)];
});

// Bidirectional in every merge mode, go_backwards, return_sequences, TimeDistributed
add('bidirectional', () => {
  const x = tf.input({shape: [6, 3], name: 'seq'});
  const c = L.bidirectional({layer: L.lstm({units: 3, returnSequences: true}), mergeMode: 'concat', name: 'bi_concat'}).apply(x);
  const s = L.bidirectional({layer: L.gru({units: 3, returnSequences: true, resetAfter: false}), mergeMode: 'sum', name: 'bi_sum'}).apply(x);
  const a = L.bidirectional({layer: L.simpleRNN({units: 3, returnSequences: true}), mergeMode: 'ave', name: 'bi_ave'}).apply(x);
  const m = L.bidirectional({layer: L.simpleRNN({units: 3, returnSequences: true}), mergeMode: 'mul', name: 'bi_mul'}).apply(x);
  const back = L.lstm({units: 3, returnSequences: true, goBackwards: true, name: 'backwards'}).apply(x);
  const h = L.concatenate({name: 'cat'}).apply([c, s, a, m, back]);
  const td = L.timeDistributed({layer: L.dense({units: 2, activation: 'relu'}), name: 'td'}).apply(h);
  const y = L.globalAveragePooling1d({name: 'gap'}).apply(td);
  return tf.model({inputs: x, outputs: y});
}, () => [uniform([B, 6, 3], -1, 1)]);

// Conv1D and the 1-D poolings
add('conv1d', () => {
  const x = tf.input({shape: [12, 3], name: 'signal'});
  let h = L.conv1d({filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1'}).apply(x);
  h = L.maxPooling1d({poolSize: 2, name: 'mp'}).apply(h);
  h = L.conv1d({filters: 5, kernelSize: 2, strides: 1, dilationRate: 2, padding: 'valid', name: 'c2'}).apply(h);
  const p = L.averagePooling1d({poolSize: 2, strides: 1, padding: 'same', name: 'ap'}).apply(h);
  const g1 = L.globalMaxPooling1d({name: 'gmp'}).apply(p), g2 = L.globalAveragePooling1d({name: 'gap'}).apply(h);
  const y = L.dense({units: 2, name: 'out'}).apply(L.concatenate({name: 'cat'}).apply([g1, g2]));
  return tf.model({inputs: x, outputs: y});
}, () => [uniform([B, 12, 3], -1, 1)]);

// Conv2D family, BatchNormalization, the 2-D poolings, padding, cropping, upsampling
add('conv2d', () => {
  const x = tf.input({shape: [10, 10, 2], name: 'image'});
  let h = L.conv2d({filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1'}).apply(x);
  h = L.batchNormalization({name: 'bn', momentum: 0.9, epsilon: 0.001}).apply(h);
  h = L.maxPooling2d({poolSize: 2, name: 'mp'}).apply(h);
  h = L.zeroPadding2d({padding: [[1, 0], [0, 1]], name: 'pad'}).apply(h);
  h = L.conv2d({filters: 3, kernelSize: [2, 3], strides: [1, 2], padding: 'valid', name: 'c2'}).apply(h);
  h = L.depthwiseConv2d({kernelSize: 2, depthMultiplier: 2, padding: 'same', name: 'dw'}).apply(h);
  h = L.upSampling2d({size: [2, 2], name: 'up'}).apply(h);
  h = L.cropping2D({cropping: [[1, 1], [0, 1]], name: 'crop'}).apply(h);
  h = L.conv2dTranspose({filters: 2, kernelSize: 3, strides: 2, padding: 'same', name: 'ct'}).apply(h);
  h = L.averagePooling2d({poolSize: 2, strides: 2, name: 'ap'}).apply(h);
  const f = L.flatten({name: 'flat'}).apply(h);
  const g = L.globalAveragePooling2d({name: 'gap'}).apply(h), gm = L.globalMaxPooling2d({name: 'gmp'}).apply(h);
  const y = L.dense({units: 3, activation: 'softmax', name: 'out'}).apply(L.concatenate({name: 'cat'}).apply([f, g, gm]));
  return tf.model({inputs: x, outputs: y});
}, () => [uniform([B, 10, 10, 2], -1, 1)]);

// shape layers and LayerNormalization
add('shapes', () => {
  const x = tf.input({shape: [12], name: 'flat'});
  let h = L.reshape({targetShape: [4, 3], name: 'rs'}).apply(x);
  h = L.permute({dims: [2, 1], name: 'perm'}).apply(h);
  h = L.layerNormalization({name: 'ln', epsilon: 0.001}).apply(h);
  h = L.flatten({name: 'fl'}).apply(h);
  h = L.dense({units: 3, activation: 'relu', name: 'd'}).apply(h);
  h = L.repeatVector({n: 4, name: 'rep'}).apply(h);
  h = L.simpleRNN({units: 2, returnSequences: true, name: 'rnn'}).apply(h);
  const y = L.flatten({name: 'out_flat'}).apply(h);
  return tf.model({inputs: x, outputs: y});
}, () => [uniform([B, 12], -1, 1)]);

// merge layers loom does not have: refused, naming the layer and its class
add('unknown_class', () => {
  const a = tf.input({shape: [3], name: 'a'}), b = tf.input({shape: [3], name: 'b'});
  return tf.model({inputs: [a, b], outputs: L.maximum({name: 'max'}).apply([a, b])});
}, () => [uniform([B, 3], -1, 1), uniform([B, 3], -1, 1)], 'Maximum');

// a constraint loom cannot apply: refused, naming the key
add('constraint', () => {
  const m = tf.sequential();
  m.add(L.dense({units: 3, inputShape: [4], kernelConstraint: tf.constraints.maxNorm({maxValue: 2})}));
  return m;
}, () => [uniform([B, 4], -1, 1)], 'kernel_constraint');

async function main() {
  const out = process.argv[2];
  await tf.setBackend('cpu');
  const index = [];
  for (const spec of models) {
    const dir = path.join(out, spec.name);
    fs.mkdirSync(dir, {recursive: true});
    const model = spec.build();
    setWeights(model);
    await model.save(tf.io.withSaveHandler(async (art) => {
      const json = {format: art.format, generatedBy: art.generatedBy, convertedBy: art.convertedBy,
                    modelTopology: art.modelTopology, weightsManifest: [{paths: ['weights.bin'], weights: art.weightSpecs}]};
      if (art.trainingConfig) json.trainingConfig = art.trainingConfig;
      fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
      fs.writeFileSync(path.join(dir, 'weights.bin'), Buffer.from(art.weightData));
      return {modelArtifactsInfo: {dateSaved: new Date(), modelTopologyType: 'JSON'}};
    }), {includeOptimizer: true}); // a compiled model's trainingConfig (and optimizer state) too
    const xs = spec.inputs();
    xs.forEach((t, i) => npy(path.join(dir, `input_${i}.npy`), t));
    let ys = model.predict(xs.length === 1 ? xs[0] : xs);
    ys = Array.isArray(ys) ? ys : [ys];
    ys.forEach((t, k) => npy(path.join(dir, `output_${k}.npy`), t));
    index.push(`${spec.name} ${xs.length} ${ys.length}` + (spec.refusal ? ` refused: ${spec.refusal}` : ''));
  }
  fs.writeFileSync(path.join(out, 'index.txt'), `# written by make_zoo.js with tfjs ${tf.version.tfjs} (backend ${tf.getBackend()})\n` + index.join('\n') + '\n');
}
main().catch((e) => { console.error(e); process.exit(1); });
