"""`python -m slatestream ...`: the command line (see slatestream.cli)."""

import os

from slatestream.cli import main

if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
