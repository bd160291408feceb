"""Every test process signs and verifies principal tokens with one test secret."""

import os

from crm_runtime.testing import TEST_INTERNAL_SECRET

os.environ.setdefault("CRM_INTERNAL_SECRET", TEST_INTERNAL_SECRET)
