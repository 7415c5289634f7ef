"""``python -m pytorch_es``: the same as the ``pytorch-es`` command."""

import sys

from pytorch_es.cli import main

if __name__ == "__main__":
    sys.exit(main())
