"""The validated tools of the public-mode attack tests, written as a toolbox into a test's directory."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

#: A tool whose validated command is ``python3 <its cat.py> <input> <output>``.
CAT_XML = """<tool id="cat1" version="1.0">
  <validators>
    <command_validator>
      <literal value="python3"/><tool_wrapper name="cat.py"/><input/><output/>
    </command_validator>
  </validators>
</tool>
"""
CAT_PY = b"import shutil, sys\nshutil.copyfile(sys.argv[-2], sys.argv[-1])\n"
CAT_TOOL = {"cat.xml": CAT_XML, "cat.py": CAT_PY}


def write_toolbox(config: Path, tools: Mapping[str, Mapping[str, str | bytes]]) -> Path:
    """``config/tools/NAME/FILE`` for each tool and a toolbox naming each ``NAME/NAME.xml``; its path."""
    for name, files in tools.items():
        directory = config / "tools" / name
        directory.mkdir(parents=True)
        for file_name, content in files.items():
            target = directory / file_name
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
    entries = "".join(f'<tool file="{name}/{name}.xml"/>' for name in tools)
    toolbox = config / "toolbox.xml"
    toolbox.write_text(f'<toolbox tool_path="tools">{entries}</toolbox>')
    return toolbox
