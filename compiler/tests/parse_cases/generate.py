#!/usr/bin/env python3
"""Write expected.json for every hand-written parser case in this directory.

Each case is <case>/Dockerfile; its expected.json is BuildKit's answer, taken from the
PyPI package `dockerfile` 3.4.0 (BuildKit v0.12.5's parser), in the same shape as the
shared corpus: {"ok": true, "instructions": [...]} or {"ok": false, "error": "..."}.
Run once after adding a case, with a venv that has the package:

    python3 -m venv /tmp/oracle-venv && /tmp/oracle-venv/bin/pip install dockerfile==3.4.0
    /tmp/oracle-venv/bin/python compiler/tests/parse_cases/generate.py
"""
import json
import os

import dockerfile

HERE = os.path.dirname(os.path.abspath(__file__))


def plain(command):
    return {
        'cmd': command.cmd,
        'sub_cmd': command.sub_cmd,
        'json': command.json,
        'flags': list(command.flags),
        'value': list(command.value),
        'start_line': command.start_line,
        'end_line': command.end_line,
        'heredocs': [
            {'name': h.name, 'file_descriptor': h.file_descriptor, 'content': h.content}
            for h in (command.heredocs or ())
        ],
    }


def main():
    for case in sorted(os.listdir(HERE)):
        path = os.path.join(HERE, case, 'Dockerfile')
        if not os.path.isfile(path):
            continue
        try:
            result = {'ok': True,
                      'instructions': [plain(c) for c in dockerfile.parse_file(path)]}
        except dockerfile.GoParseError as e:
            result = {'ok': False, 'error': str(e)}
        with open(os.path.join(HERE, case, 'expected.json'), 'w', encoding='utf-8') as f:
            json.dump(result, f, indent=1, ensure_ascii=False)
            f.write('\n')
        print(case, 'ok' if result['ok'] else 'error: ' + result['error'][:60])


if __name__ == '__main__':
    main()
