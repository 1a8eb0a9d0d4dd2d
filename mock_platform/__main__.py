"""`python -m mock_platform`."""

import sys

from mock_platform.cli import main

sys.exit(main())
