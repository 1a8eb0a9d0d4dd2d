"""`python -m campaign_service`."""

import sys

from campaign_service.cli import main

sys.exit(main())
