# reduce: the TaskInstance's input is the first stdin line, then one result per line in split
# order (null for a unit that failed within maxFailedWorkunits); prints one JSON value.
import json
import sys

spec = json.loads(sys.stdin.readline() or "null")
inside = samples = 0
for line in sys.stdin:
    result = json.loads(line)
    if result is not None:
        inside += result["inside"]
        samples += result["samples"]
print(json.dumps({"pi": 4.0 * inside / samples if samples else None, "samples": samples}))
