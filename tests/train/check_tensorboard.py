#!/usr/bin/env python3
"""Reads back the TensorBoard event file of a run with tensorboard = true, independently of the C++ writer,
and compares it with the same run's metrics.jsonl and config.toml:

- TFRecord framing: every record's length and data carry a masked CRC-32C, checked here by a bitwise
  CRC-32C (itself checked against the published check values), and the file ends on a record boundary;
- every field of every message has the number and wire type of TensorBoard's own schema (the numbers
  below are TensorBoard's tensorboard/compat/proto/{event,summary,tensor,tensor_shape}.proto), walked
  in the raw wire format, and the records also parse with Debian's Python protobuf against a schema
  built here from those numbers;
- first record: file_version "brain.Event:2"; a "config" text summary for the text plugin holding
  config.toml; one summary per step of metrics.jsonl, whose every scalar equals the JSONL value to the
  precision printed there (and float32's).

With --kill-after N the run is SIGKILLed once metrics.jsonl has N steps: the event file must still read
cleanly (a final record cut mid-write is allowed) and hold every step metrics.jsonl has but the last
(records are flushed per step; the kill may land between the two files' writes).

  check_tensorboard.py RUN_DIR [--kill-after N] [-- COMMAND...]   (COMMAND, when given, is run first)
"""
import glob
import json
import math
import os
import re
import signal
import struct
import subprocess
import sys
import time

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

VARINT, I64, LEN, I32 = 0, 1, 2, 5
# TensorBoard's field numbers and wire types for each message we expect (name -> {number: (field, wire, message)}).
SCHEMA = {
    "Event": {1: ("wall_time", I64, None), 2: ("step", VARINT, None), 3: ("file_version", LEN, None),
              5: ("summary", LEN, "Summary")},
    "Summary": {1: ("value", LEN, "Value")},
    "Value": {1: ("tag", LEN, None), 2: ("simple_value", I32, None), 8: ("tensor", LEN, "TensorProto"),
              9: ("metadata", LEN, "SummaryMetadata")},
    "SummaryMetadata": {1: ("plugin_data", LEN, "PluginData")},
    "PluginData": {1: ("plugin_name", LEN, None), 2: ("content", LEN, None)},
    "TensorProto": {1: ("dtype", VARINT, None), 2: ("tensor_shape", LEN, "TensorShapeProto"),
                    8: ("string_val", LEN, None)},
    "TensorShapeProto": {2: ("dim", LEN, "Dim")},
    "Dim": {1: ("size", VARINT, None)},
}
DT_STRING = 7
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print("FAIL:", what)


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def varint(buf, pos):
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def walk(buf, message, path):
    """Every field of `buf` against SCHEMA[message]; returns {name: [values]} with sub-messages walked."""
    fields, pos = {}, 0
    while pos < len(buf):
        key, pos = varint(buf, pos)
        number, wire = key >> 3, key & 7
        spec = SCHEMA[message].get(number)
        check(spec is not None, f"{path}: field number {number} is not one of {message}'s {sorted(SCHEMA[message])}")
        if spec is None:
            return fields
        name, expected_wire, sub = spec
        check(wire == expected_wire, f"{path}.{name}: wire type {wire}, TensorBoard's schema has {expected_wire}")
        if wire == VARINT:
            value, pos = varint(buf, pos)
        elif wire == I64:
            value, pos = struct.unpack_from("<d", buf, pos)[0], pos + 8
        elif wire == I32:
            value, pos = struct.unpack_from("<f", buf, pos)[0], pos + 4
        else:
            size, pos = varint(buf, pos)
            value, pos = bytes(buf[pos:pos + size]), pos + size
            if sub:
                value = walk(value, sub, f"{path}.{name}")
        fields.setdefault(name, []).append(value)
    check(pos == len(buf), f"{path}: message overruns its length")
    return fields


def read_records(path, cut_tail_allowed):
    data = open(path, "rb").read()
    records, pos = [], 0
    while pos < len(data):
        if cut_tail_allowed and pos + 16 + struct.unpack("<Q", data[pos:pos + 8].ljust(8, b"\0"))[0] > len(data):
            print(f"final record cut at byte {pos} of {len(data)} (the kill)")
            break
        check(pos + 12 <= len(data), f"record at byte {pos}: truncated header")
        length_bytes = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", length_bytes)
        (length_crc,) = struct.unpack_from("<I", data, pos + 8)
        check(length_crc == masked(length_bytes), f"record at byte {pos}: length CRC {length_crc:#x} != {masked(length_bytes):#x}")
        body = data[pos + 12:pos + 12 + length]
        check(len(body) == length and pos + 16 + length <= len(data), f"record at byte {pos}: truncated data")
        (data_crc,) = struct.unpack_from("<I", data, pos + 12 + length)
        check(data_crc == masked(body), f"record at byte {pos}: data CRC {data_crc:#x} != {masked(body):#x}")
        records.append(body)
        pos += 16 + length
    return records


def protobuf_classes():
    """Event and friends for Python's protobuf, declared from TensorBoard's numbers in SCHEMA."""
    types = {VARINT: "TYPE_INT64", I64: "TYPE_DOUBLE", I32: "TYPE_FLOAT", LEN: "TYPE_BYTES"}
    strings = {"tag", "plugin_name", "file_version"}
    repeated = {"value", "string_val", "dim"}
    proto = descriptor_pb2.FileDescriptorProto(name="tb_check.proto", package="tb_check", syntax="proto3")
    for message, fields in SCHEMA.items():
        entry = proto.message_type.add(name=message)
        for number, (name, wire, sub) in fields.items():
            field = entry.field.add(name=name, number=number)
            field.label = field.LABEL_REPEATED if name in repeated else field.LABEL_OPTIONAL
            if sub:
                field.type, field.type_name = field.TYPE_MESSAGE, f".tb_check.{sub}"
            else:
                field.type = getattr(field, "TYPE_STRING" if name in strings else types[wire])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    get = getattr(message_factory, "GetMessageClass", None)
    factory = None if get else message_factory.MessageFactory(pool)
    return {name: (get(pool.FindMessageTypeByName(f"tb_check.{name}")) if get
                   else factory.GetPrototype(pool.FindMessageTypeByName(f"tb_check.{name}"))) for name in SCHEMA}


def printed_precision(text):
    """Half a unit in the last digit of a number as printed in metrics.jsonl."""
    mantissa, _, exponent = text.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 0.5 * 10.0 ** (int(exponent or 0) - decimals)


def jsonl_steps(run_dir):
    try:
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            return sum(1 for line in f if line.endswith("\n"))
    except FileNotFoundError:
        return 0


def run_and_kill(command, run_dir, steps):
    """Runs the training command and SIGKILLs it (its whole process group) once metrics.jsonl has `steps` steps."""
    process = subprocess.Popen(command, start_new_session=True)
    deadline = time.monotonic() + 60
    while jsonl_steps(run_dir) < steps and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    finished = process.poll() is not None
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    check(not finished and jsonl_steps(run_dir) >= steps, f"the run ended or stalled before {steps} steps: nothing killed")


def check_with_tensorboard(run_dir, scalars):
    """Where the tensorboard package is importable, its own reader (the one its server uses) must see the
    same scalars under its scalars plugin and the config under its text plugin."""
    try:
        from tensorboard.backend.event_processing import plugin_event_accumulator
        from tensorboard.util import tensor_util
    except ImportError:
        print("TensorBoard's own reader: no tensorboard package in this python, not compared")
        return
    reader = plugin_event_accumulator.EventAccumulator(run_dir, size_guidance={"tensors": 0})
    reader.Reload()
    check(list(reader.PluginTagToContent("text")) == ["config"], "TensorBoard's text plugin does not see 'config'")
    seen = 0
    for tag in reader.PluginTagToContent("scalars"):
        for event in reader.Tensors(tag):
            value = float(tensor_util.make_ndarray(event.tensor_proto))
            check(scalars.get(event.step, {}).get(tag) == value, f"TensorBoard reads {tag} = {value} at step {event.step}")
            seen += 1
    check(seen == sum(len(values) for values in scalars.values()), f"TensorBoard's reader saw {seen} scalars")
    print(f"TensorBoard's own reader: the same {seen} scalars and the config text")


def main():
    args = sys.argv[1:]
    run_dir = args[0]
    kill_after = int(args[args.index("--kill-after") + 1]) if "--kill-after" in args else 0
    if "--" in args:
        command = args[args.index("--") + 1:]
        os.makedirs(run_dir, exist_ok=True)
        for stale in glob.glob(os.path.join(run_dir, "*tfevents*")) + glob.glob(os.path.join(run_dir, "metrics.jsonl")):
            os.remove(stale)  # a previous run's
        if kill_after:
            run_and_kill(command, run_dir, kill_after)
        else:
            result = subprocess.run(command)
            if result.returncode != 0:
                print(f"FAIL: the training run exited {result.returncode}: {' '.join(command)}")
                return 1
    check(crc32c(b"123456789") == 0xE3069283 and crc32c(bytes(32)) == 0x8A9136AA
          and crc32c(b"\xff" * 32) == 0x62A8AB43, "this test's CRC-32C misses the published check values")

    files = glob.glob(os.path.join(run_dir, "*tfevents*"))
    check(len(files) == 1, f"expected one event file (rank 0's) in {run_dir}, found {files}")
    if len(files) != 1:
        return 1
    check(re.fullmatch(r"events\.out\.tfevents\.\d{10}\.[^/]+", os.path.basename(files[0])) is not None,
          f"event file name {os.path.basename(files[0])} is not events.out.tfevents.<time>.<host>...")
    records = read_records(files[0], cut_tail_allowed=bool(kill_after))
    events = [walk(r, "Event", f"record {i}") for i, r in enumerate(records)]
    Event = protobuf_classes()["Event"]
    parsed = [Event.FromString(r) for r in records]

    check(events[0].get("file_version") == [b"brain.Event:2"] and parsed[0].file_version == "brain.Event:2",
          f"first record is not file_version brain.Event:2: {events[0]}")
    mtime = os.path.getmtime(files[0])
    for i, event in enumerate(parsed):
        check(mtime - 3600 < event.wall_time <= mtime + 1, f"record {i}: wall_time {event.wall_time} is not this run's")

    texts = [(e, v) for e in parsed for v in e.summary.value if v.HasField("tensor")]
    check(len(texts) == 1, f"expected one text summary, found {len(texts)}")
    config_toml = open(os.path.join(run_dir, "config.toml")).read()
    for event, value in texts:
        tensor = value.tensor
        check(value.tag == "config" and value.metadata.plugin_data.plugin_name == "text",
              f"text summary tag {value.tag!r}, plugin {value.metadata.plugin_data.plugin_name!r}")
        check(tensor.dtype == DT_STRING and len(tensor.tensor_shape.dim) == 0 and len(tensor.string_val) == 1,
              f"text tensor dtype {tensor.dtype}, dims {len(tensor.tensor_shape.dim)}, {len(tensor.string_val)} strings")
        check(config_toml in tensor.string_val[0].decode(), "the config text does not hold config.toml")

    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        jsonl = [json.loads(line, parse_float=lambda text: (float(text), text), parse_int=lambda text: (int(text), text))
                 for line in f if line.endswith("\n")]
    scalars = {}
    for i, (event, raw) in enumerate(zip(parsed, events)):
        values = [v for v in event.summary.value if not v.HasField("tensor")]
        if values:
            check(event.step not in scalars, f"step {event.step} has two scalar summaries")
            scalars[event.step] = {v.tag: v.simple_value for v in values}
            walked = [v["simple_value"][0] for v in raw["summary"][0]["value"] if "simple_value" in v]
            check(walked == [v.simple_value for v in values], f"record {i}: raw and protobuf decoding disagree")
    steps = [r["step"][0] for r in jsonl]
    if kill_after and len(scalars) == len(steps) - 1:
        jsonl, steps = jsonl[:-1], steps[:-1]  # killed after the step's JSONL line, before its event
    check(sorted(scalars) == steps, f"scalar steps {sorted(scalars)} != metrics.jsonl steps {steps}")
    required = {"loss", "lr", "grad_norm", "tokens_per_s", "mfu", "tflops", "ms"}
    compared = 0
    for record in jsonl:
        step = record["step"][0]
        tb = scalars.get(step, {})
        wanted = required | ({"val_loss"} & record.keys()) | ({"peak_memory_gib"} & record.keys())
        check(wanted <= tb.keys(), f"step {step}: scalars {sorted(wanted - tb.keys())} missing")
        for tag, value in tb.items():
            check(tag in record, f"step {step}: scalar {tag!r} is not in metrics.jsonl")
            if tag not in record:
                continue
            reference, text = record[tag]
            tolerance = printed_precision(text) + abs(reference) * 2.0 ** -23 + 1e-30
            check(abs(value - reference) <= tolerance and math.isfinite(value),
                  f"step {step}: {tag} = {value!r} in the event file, {text} in metrics.jsonl")
            compared += 1
    if not kill_after:
        check_with_tensorboard(run_dir, scalars)
    val_steps = [r["step"][0] for r in jsonl if "val_loss" in r]
    check(len(val_steps) > 0, "the run evaluated at no step: val_loss untested")
    check(len(steps) >= max(kill_after - 1, 1), f"only {len(steps)} steps compared")
    print(f"{len(records)} records, {len(scalars)} steps, {compared} scalars equal to metrics.jsonl "
          f"(val_loss at steps {val_steps}), config text {len(config_toml)} bytes")
    print("PASS" if not failures else f"FAIL ({len(failures)} problems)")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
