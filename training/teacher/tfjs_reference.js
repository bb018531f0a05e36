// Run the ORIGINAL TF.js teacher graph with pure-JS TensorFlow.js (cpu backend) on given inputs.
//
//   NODE_PATH=<teacher>/node/node_modules node tfjs_reference.js MODEL_JSON INPUT_F32 N OUT_DIR [OUTPUTS]
//
// INPUT_F32: N inputs of the graph's input shape (for the teacher 512 x 512 x 3, RGB 0..255, NHWC),
// float32 little-endian, run one at a time. OUTPUTS: JSON {key: graph tensor name}, default the
// teacher's detections / keypoints / wh. Writes OUT_DIR/<key>.f32 (raw float32, all N) and
// OUT_DIR/outputs.json with the shapes. Used by training/teacher/reference.py to check the ONNX
// conversion.
'use strict';
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const converter = require('@tensorflow/tfjs-converter');

const TEACHER_OUTPUTS = {
  detections: 'tower_0/detections',
  keypoints: 'tower_0/keypoints',
  wh: 'tower_0/wh',
};

function fileHandler(modelJson) {
  // A TF.js IOHandler reading model.json and its weight files from disk.
  return {
    load: async () => {
      const model = JSON.parse(fs.readFileSync(modelJson, 'utf8'));
      const specs = [];
      const buffers = [];
      for (const group of model.weightsManifest) {
        specs.push(...group.weights);
        for (const p of group.paths) buffers.push(fs.readFileSync(path.join(path.dirname(modelJson), p)));
      }
      const all = Buffer.concat(buffers);
      return {
        modelTopology: model.modelTopology,
        format: model.format,
        generatedBy: model.generatedBy,
        convertedBy: model.convertedBy,
        signature: model.signature,
        weightSpecs: specs,
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
      };
    },
  };
}

async function main() {
  const [modelJson, inputPath, nText, outDir, outputsJson] = process.argv.slice(2);
  if (!outDir) throw new Error('usage: tfjs_reference.js MODEL_JSON INPUT_F32 N OUT_DIR [OUTPUTS]');
  const OUTPUTS = outputsJson ? JSON.parse(outputsJson) : TEACHER_OUTPUTS;
  await tf.setBackend('cpu');
  const model = await converter.loadGraphModel(fileHandler(modelJson));
  const shape = [1, ...model.inputs[0].shape.slice(1)];
  const n = parseInt(nText, 10);
  const raw = fs.readFileSync(inputPath);
  const frame = shape.reduce((a, b) => a * b, 1);
  if (raw.byteLength !== n * frame * 4) throw new Error(`input has ${raw.byteLength} bytes, want ${n * frame * 4}`);
  const data = new Float32Array(raw.buffer, raw.byteOffset, n * frame);
  const names = Object.keys(OUTPUTS);
  const chunks = Object.fromEntries(names.map((k) => [k, []]));
  const shapes = {};
  for (let i = 0; i < n; i++) {
    const x = tf.tensor(data.slice(i * frame, (i + 1) * frame), shape);
    let outs = model.execute(x, names.map((k) => OUTPUTS[k]));
    if (!Array.isArray(outs)) outs = [outs];
    names.forEach((k, j) => {
      chunks[k].push(Buffer.from(outs[j].dataSync().buffer));
      shapes[k] = [n, ...outs[j].shape.slice(1)];
    });
    tf.dispose([x, ...outs]);
  }
  fs.mkdirSync(outDir, { recursive: true });
  for (const k of names) fs.writeFileSync(path.join(outDir, `${k}.f32`), Buffer.concat(chunks[k]));
  fs.writeFileSync(path.join(outDir, 'outputs.json'), JSON.stringify({ shapes, backend: tf.getBackend(), tfjs: tf.version_core }));
}

main().catch((e) => { console.error(e); process.exit(1); });
