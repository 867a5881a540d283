// The reference for xp_prep --tokenizer gpt2: OpenAI's tiktoken (npm, its Rust core compiled to WASM).
//   node check_tiktoken.js nasty OUT.txt OUT.jsonl    writes the nasty corpus (seeded, the same every run),
//                                                     and as JSON Lines: its lines in documents of 1-20
//   node check_tiktoken.js ranks OUT.tiktoken         writes tiktoken's GPT-2 ranks as a ranks file
//   node check_tiktoken.js compare PREFIX INPUT...    shards PREFIX_{train,val}_*.bin == <|endoftext|> +
//                                                     encode_ordinary(document), document after document
// NODE_PATH names the folder holding node_modules/tiktoken (tools/setup.sh puts it in .deps/npm).
'use strict';
const fs = require('fs');
const path = require('path');
const { get_encoding } = require('tiktoken');

const [mode, out, ...rest] = process.argv.slice(2);

function nastyCorpus() {
  let seed = 20240520;
  const random = (n) => {  // xorshift32: the same corpus on every machine
    seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0;
    return seed % n;
  };
  const fragments = [
    'Hello', 'world', 'naïve café', 'Ærøskøbing', 'Straße', 'ÉCOLE', 'Ελληνικά γράμματα', 'Русский текст',
    'العربية', 'עִבְרִית', 'हिन्दी', 'ภาษาไทย', '中文字符', '日本語のひらがなとカタカナ', '한국어', 'ქართული',
    'Ⅻ', 'x²+y³', '٣٤٥٦', '१२३', '½', '👍', '👍🏽', '👨‍👩‍👧‍👦', '🇫🇷🇯🇵', '🤖🤖🤖', 'e\u0301\u0302', '\u200d', '\ufeff',
    "it's", "I'm", "we're", "they've", "you'll", "he'd", "don't", "IT'S", "O'Neil's", "rock 'n' roll", 'it’s',
    "''s", "'", "'''", '<|endoftext|>', 'a<|endoftext|>b', '<|endoftext', '<|', '|>',
    '1234567890123', '3.14159', '1,000,000', '0x1F', '007', '2024-05-20', '12:30', '१२३४',
    '!!!', '?!', '...', '—', '–', '«»', '“quoted”', '(parens)', '[brackets]', '{braces}', '#$%&', '@user', 'a_b',
    'https://example.com/path?q=1&x=2', 'email@example.com', 'C++', 'i++;', '=>', '->', '::',
    '\t', '\t\t', '\r\n', '\r\n\r\n', '\n', '\n\n\n', '\r', '\u0085', '\u00a0', '\u3000', '\u2028', '\u2029', '\u000b', '\f',
    '\u0001', '\u007f', '\u0000', 'a\u180eb', ' \u180e ', '  ', '   ', '          ', ' \n ', ' \t ',
  ];
  const separators = [' ', '', '  ', '\n', '\r\n', '\t', '   ', ' \u00a0', '\n\n', ' \r\n '];
  const parts = [];
  for (let i = 0; i < 20000; ++i) {
    parts.push(fragments[random(fragments.length)], separators[random(separators.length)]);
    if (random(500) === 0) parts.push(' '.repeat(1 + random(3000)));  // long runs of spaces, digits, letters
    if (random(500) === 0) parts.push('9'.repeat(1 + random(2000)));
    if (random(700) === 0) parts.push('ab'.repeat(1 + random(1500)));
  }
  parts.push('   \n  ');  // trailing whitespace at the very end
  return parts.join('');
}

function documents(input) {
  const text = fs.readFileSync(input, 'utf8');
  if (!input.endsWith('.jsonl')) return [text];
  return text.split('\n').filter((line) => line.trim() !== '').map((line) => JSON.parse(line).text);
}

function shards(prefix) {
  const dir = path.dirname(prefix), base = path.basename(prefix);
  const tokens = [];
  for (const split of ['train', 'val']) {
    const names = fs.readdirSync(dir).filter((n) => n.startsWith(`${base}_${split}_`) && n.endsWith('.bin')).sort();
    for (const name of names) {
      const bytes = fs.readFileSync(path.join(dir, name));
      const header = new Int32Array(bytes.buffer, bytes.byteOffset, 256);
      const expect = [[0, 20240520, 'magic'], [1, 1, 'version'], [3, 2, 'tokenizer (2 = gpt2)'], [4, 50257, 'vocab size']];
      for (const [slot, value, what] of expect)
        if (header[slot] !== value) throw new Error(`${name}: header ${what} is ${header[slot]}, expected ${value}`);
      const body = new Uint16Array(bytes.buffer, bytes.byteOffset + 1024, header[2]);
      for (const t of body) tokens.push(t);
    }
  }
  return tokens;
}

if (mode === 'nasty') {
  const corpus = nastyCorpus();
  fs.writeFileSync(out, corpus, 'utf8');
  const lines = corpus.split('\n'), records = [];
  for (let first = 0, size = 1; first < lines.length; first += size, size = 1 + (first % 20))
    records.push(JSON.stringify({ id: first, text: lines.slice(first, first + size).join('\n') }));
  records.push('', JSON.stringify({ text: '' }), '{"text": "escaped \\u00e9 \\ud83d\\ude00 \\t<|endoftext|>\\n", "n": 1}');
  fs.writeFileSync(rest[0], records.join('\n') + '\n', 'utf8');
} else if (mode === 'ranks') {
  // The package's GPT-2 ranks are stored compressed ("! OFFSET base64 base64 ..."); a ranks file has one a line.
  const stored = JSON.parse(fs.readFileSync(require.resolve('tiktoken/encoders/gpt2.json'), 'utf8'));
  const lines = [];
  for (const row of stored.bpe_ranks.split('\n').filter(Boolean)) {
    const [, offset, ...tokens] = row.split(' ');
    tokens.forEach((token, i) => lines.push(`${token} ${Number(offset) + i}`));
  }
  fs.writeFileSync(out, lines.join('\n') + '\n');
} else if (mode === 'compare') {
  const encoding = get_encoding('gpt2');
  const expected = [];
  let documentCount = 0;
  for (const input of rest)
    for (const document of documents(input)) {
      expected.push(50256);
      for (const id of encoding.encode_ordinary(document)) expected.push(id);
      ++documentCount;
    }
  const got = shards(out);
  const length = Math.min(expected.length, got.length);
  let first = 0;
  while (first < length && expected[first] === got[first]) ++first;
  if (first < length || expected.length !== got.length) {
    const show = (ids) => JSON.stringify(ids.slice(Math.max(0, first - 5), first + 5));
    console.error(`FAIL: ${got.length} tokens from xp_prep, ${expected.length} from tiktoken; first difference at ` +
                  `${first}: xp_prep ${show(got)} tiktoken ${show(expected)}`);
    process.exit(1);
  }
  console.log(`${got.length} tokens of ${documentCount} documents identical to tiktoken encode_ordinary`);
} else {
  console.error('usage: node check_tiktoken.js nasty|ranks|compare ...');
  process.exit(2);
}
