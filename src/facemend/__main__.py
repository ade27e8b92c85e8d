import sys

from facemend.cli import main

sys.exit(main())
