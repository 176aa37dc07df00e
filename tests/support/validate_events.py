#!/usr/bin/env python3
"""validate_events.py [--all-namespaces] SCHEMA FILE...

Checks events against docs/events.schema.json (JSON Schema draft 2020-12)
with Debian's python3-jsonschema. A .jsonl FILE is read as one JSON event
per line; in a Markdown FILE (docs/events.md) the lines that start with
'{"namespace"' are the examples, and they are checked the same way.

With --all-namespaces, every namespace the schema lists must occur in the
events of each FILE, so a new namespace cannot go untested or undocumented;
--except=NS (repeatable) leaves NS out of that, for an event a healthy run
cannot produce (service: needs a full disk), each exempted by its caller.

Exits 0 when every event is valid; 1 at the first invalid event, printing
the file, line, the reason and the line; 2 on a usage or schema error.
"""
import json
import sys

import jsonschema


def check(validator, namespaces, name):
    markdown = name.endswith(".md")
    seen = set()
    count = 0
    with open(name, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if markdown and not line.startswith('{"namespace"'):
                continue
            where = "%s:%d" % (name, number)
            try:
                event = json.loads(line)
            except ValueError as error:
                print("%s: not JSON: %s" % (where, error))
                return False
            # Every reason, the specific ones first: a field that fails its
            # own schema also shows up as "unevaluated" at the top level.
            errors = sorted(validator.iter_errors(event),
                            key=lambda e: e.validator == "unevaluatedProperties")
            if errors:
                for error in errors:
                    path = "/".join(str(p) for p in error.absolute_path) or "(top level)"
                    print("%s: %s: %s" % (where, path, error.message))
                print("    %s" % line.strip())
                return False
            seen.add(event["namespace"])
            count += 1
    if count == 0:
        print("%s: no events to validate" % name)
        return False
    missing = sorted(set(namespaces) - seen)
    if missing:
        print("%s: no event of namespace %s" % (name, ", ".join(missing)))
        return False
    print("%s: %d events valid" % (name, count))
    return True


def main(argv):
    all_namespaces = "--all-namespaces" in argv
    excepted = {a.split("=", 1)[1] for a in argv if a.startswith("--except=")}
    args = [a for a in argv if a != "--all-namespaces" and not a.startswith("--except=")]
    if len(args) < 2:
        print(__doc__.strip())
        return 2
    try:
        with open(args[0], encoding="utf-8") as f:
            schema = json.load(f)
        jsonschema.Draft202012Validator.check_schema(schema)
    except (OSError, ValueError) as error:
        print("%s: cannot read the schema: %s" % (args[0], error))
        return 2
    except jsonschema.exceptions.SchemaError as error:
        print("%s: not a valid draft 2020-12 schema: %s" % (args[0], error.message))
        return 2
    validator = jsonschema.Draft202012Validator(schema)
    namespaces = schema["properties"]["namespace"]["enum"] if all_namespaces else []
    namespaces = [n for n in namespaces if n not in excepted]
    for name in args[1:]:
        try:
            if not check(validator, namespaces, name):
                return 1
        except OSError as error:
            print("%s: %s" % (name, error))
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
