"""A command task: reads its input as JSON on stdin, prints its JSON result on stdout.
Anything written to stderr becomes a log line of the TaskInstance."""
import json
import sys

data = json.load(sys.stdin)
text = data.get("text") if isinstance(data, dict) else None
if not isinstance(text, str):
    sys.exit("expected an input like {\"text\": \"...\"}")
print(f"shouting {len(text)} characters", file=sys.stderr)
json.dump({"shout": text.upper() + "!"}, sys.stdout)
