// The reference for samples on GPT-2 BPE data: OpenAI's tiktoken (npm). NODE_PATH names node_modules.
//   node check_gpt2_sample.js TRAIN_OUT STEP GENERATE_OUT GENERATE_ERR PROMPT
// 1. The sample xp_train printed after STEP equals xp_generate's text on that step's checkpoint, byte for byte.
// 2. xp_generate's prompt ids are tiktoken's encode_ordinary(PROMPT), and the text after the prompt is
//    tiktoken's decode of the generated ids.
'use strict';
const fs = require('fs');
const { get_encoding } = require('tiktoken');

const [trainOut, step, generateOut, generateErr, prompt] = process.argv.slice(2);
const fail = (message) => { console.error('FAIL: ' + message); process.exit(1); };
const equal = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

const train = fs.readFileSync(trainOut);
const header = Buffer.from(`xp_train: sample after step ${step} (`);
const at = train.indexOf(header);
if (at < 0) fail(`no sample after step ${step} in ${trainOut}`);
const start = train.indexOf('\n', at) + 1;
const end = train.indexOf('\n---\n', start);
const sample = train.subarray(start, end);

const generated = fs.readFileSync(generateOut);
// xp_generate ends its text with a newline unless the text already has one.
const expected = sample[sample.length - 1] === 10 ? sample : Buffer.concat([sample, Buffer.from('\n')]);
if (!equal(generated, expected)) fail(`xp_generate's text differs from the training sample:\n${generated}\n${sample}`);

const ids = (what) => {
  const line = fs.readFileSync(generateErr, 'utf8').split('\n').find((l) => l.startsWith(`xp_generate: ${what} ids:`));
  if (!line) fail(`no ${what} ids in ${generateErr}`);
  return line.split(':')[2].trim().split(/\s+/).map(Number);
};
const encoding = get_encoding('gpt2');
const promptIds = ids('prompt'), generatedIds = ids('generated');
const reference = Array.from(encoding.encode_ordinary(prompt));
if (promptIds.join(' ') !== reference.join(' ')) fail(`prompt ids ${promptIds} != tiktoken's ${reference}`);
const promptBytes = Buffer.from(prompt, 'utf8');
const continuation = sample.subarray(promptBytes.length);
if (!equal(sample.subarray(0, promptBytes.length), promptBytes)) fail('the sample does not start with the prompt');
if (!equal(encoding.decode(new Uint32Array(generatedIds)), continuation))
  fail("the sample's continuation is not tiktoken's decode of the generated ids");
console.log(`ok: ${promptIds.length} prompt ids as tiktoken's; ${generatedIds.length} generated ids decode as tiktoken's ` +
            `(${continuation.length} bytes)`);
