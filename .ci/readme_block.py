"""Print the README code block that follows the marker ``<!-- block: NAME -->`` (CI runs it as written)."""

import re
import sys
from pathlib import Path

name = sys.argv[1]
text = Path(__file__).resolve().parent.parent.joinpath("README.md").read_text()
match = re.search(rf"<!-- block: {re.escape(name)} -->\s*```\w*\n(.*?)```", text, re.S)
if not match:
    sys.exit(f"readme_block: no block named {name!r} in README.md")
print(match.group(1))
